-- One page of a reader's feed, in one round trip (see services/feed/timelines.py).
--
-- KEYS[1] the reader's timeline, KEYS[2] the reader's celebrity set.
-- ARGV: cursor score ('' on the first page), cursor entry id, page size,
--       reader ttl, cache ttl (seconds).
--
-- Reads the timeline's slice below the cursor and the slice of each followed
-- celebrity's posts, merges them newest first (score, then id, descending)
-- without repeats, stops at the highest floor (the sentinel's score: a set may
-- lack what lies at or below it), and returns the first size + 1 with the
-- cached entries and authors:
--   {'missing'}                          the timeline or celebrity set is not built
--   {'posts', author...}                 these celebrities' posts are not cached
--   {'ok', short, n, id1, score1, ..., idn, scoren,
--    body1 .. body_min(n,size), m, author1, profile1, ..., authorm, profilem}
-- `short` is 1 when fewer than size + 1 came back because a floor was reached:
-- the caller continues from PostgreSQL. A missing body or profile is false.
-- Posts, entry and author keys are derived here, not passed in KEYS: Zentry's
-- Redis is a single node (not Redis Cluster).

local timeline, celebs = KEYS[1], KEYS[2]
local cursor, cursor_id = ARGV[1], ARGV[2]
local size = tonumber(ARGV[3])
local reader_ttl, cache_ttl = ARGV[4], ARGV[5]

local timeline_floor = redis.call('ZSCORE', timeline, '~')
if not timeline_floor or redis.call('SISMEMBER', celebs, '~') == 0 then
  return {'missing'}
end
redis.call('EXPIRE', timeline, reader_ttl)
redis.call('EXPIRE', celebs, reader_ttl)

-- Each source is one sorted set's slice, newest first: parallel arrays and a read position.
local sources = {}
local floor_score = nil  -- the highest floor above -inf among the sources

local function slice(key, floor_raw)
  local ids, nums, raws, n = {}, {}, {}, 0
  local function add(id, score)
    n = n + 1
    ids[n], nums[n], raws[n] = id, tonumber(score), score
  end
  if cursor ~= '' then  -- equal scores below the cursor's id come first, highest id first
    local ties = redis.call('ZRANGEBYSCORE', key, cursor, cursor, 'WITHSCORES')
    for i = #ties - 1, 1, -2 do
      if ties[i] ~= '~' and ties[i] < cursor_id then add(ties[i], ties[i + 1]) end
    end
  end
  local top = cursor == '' and '+inf' or ('(' .. cursor)
  local rows = redis.call('ZREVRANGEBYSCORE', key, top, '(' .. floor_raw, 'WITHSCORES', 'LIMIT', 0, size + 1)
  for i = 1, #rows, 2 do add(rows[i], rows[i + 1]) end
  local floor = tonumber(floor_raw)
  if floor ~= -math.huge and (floor_score == nil or floor > floor_score) then
    floor_score = floor
  end
  sources[#sources + 1] = {ids = ids, nums = nums, raws = raws, n = n, at = 1}
end

slice(timeline, timeline_floor)
local missing = {'posts'}
for _, author in ipairs(redis.call('SMEMBERS', celebs)) do
  if author ~= '~' then
    local posts = 'feed:posts:' .. author
    local floor_raw = redis.call('ZSCORE', posts, '~')
    if floor_raw then
      redis.call('EXPIRE', posts, cache_ttl)
      slice(posts, floor_raw)
    else
      missing[#missing + 1] = author
    end
  end
end
if #missing > 1 then return missing end

-- Merge the sources newest first, each entry once, down to the floor, size + 1 at most.
local page_ids, page_raws, seen = {}, {}, {}
while #page_ids <= size do
  local best, best_num, best_id = nil, nil, nil
  for _, source in ipairs(sources) do
    local at = source.at
    if at <= source.n then
      local num, id = source.nums[at], source.ids[at]
      if best == nil or num > best_num or (num == best_num and id > best_id) then
        best, best_num, best_id = source, num, id
      end
    end
  end
  if best == nil then break end
  if floor_score ~= nil and best_num <= floor_score then break end
  if not seen[best_id] then
    seen[best_id] = true
    page_ids[#page_ids + 1] = best_id
    page_raws[#page_raws + 1] = best.raws[best.at]
  end
  best.at = best.at + 1
end

local count = #page_ids
local out = {'ok', (count <= size and floor_score ~= nil) and 1 or 0, count}
for i = 1, count do
  out[#out + 1] = page_ids[i]
  out[#out + 1] = page_raws[i]
end
local authors, listed = {}, {}
for i = 1, math.min(count, size) do
  local entry = redis.call('HMGET', 'feed:entry:' .. page_ids[i], 'a', 'b')
  out[#out + 1] = entry[2]
  if entry[1] and not authors[entry[1]] then
    authors[entry[1]] = true
    listed[#listed + 1] = entry[1]
  end
end
out[#out + 1] = #listed
for _, author in ipairs(listed) do
  out[#out + 1] = author
  out[#out + 1] = redis.call('GET', 'feed:author:' .. author)
end
return out
