-- One page of a reader's feed, in one round trip (see services/feed/timelines.py).
--
-- KEYS[1] the reader's timeline, KEYS[2] the reader's celebrity set.
-- ARGV: cursor score ('' on the first page), cursor entry id, page size,
--       timeline length, reader ttl, cache ttl (seconds).
--
-- Reads the timeline's slice below the cursor and the slice of each followed
-- celebrity's posts, merges them newest first (score, then id, descending)
-- without repeats, stops at the floor of any full (so possibly trimmed) set,
-- and returns the first size + 1 with the cached entries and authors:
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
local size, length = tonumber(ARGV[3]), tonumber(ARGV[4])
local reader_ttl, cache_ttl = ARGV[5], ARGV[6]

if redis.call('EXISTS', timeline) == 0 or redis.call('SISMEMBER', celebs, '~') == 0 then
  return {'missing'}
end
redis.call('EXPIRE', timeline, reader_ttl)
redis.call('EXPIRE', celebs, reader_ttl)

-- Each source is one sorted set's slice, newest first: parallel arrays and a read position.
local sources = {}
local floor_score, floor_id = nil, nil

local function slice(key)
  local ids, nums, raws, n = {}, {}, {}, 0
  local function add(id, score)
    n = n + 1
    ids[n], nums[n], raws[n] = id, tonumber(score), score
  end
  if cursor ~= '' then  -- equal scores below the cursor's id come first, highest id first
    local ties = redis.call('ZRANGEBYSCORE', key, cursor, cursor, 'WITHSCORES')
    for i = #ties - 1, 1, -2 do
      if ties[i] < cursor_id then add(ties[i], ties[i + 1]) end
    end
  end
  local top = cursor == '' and '+inf' or ('(' .. cursor)
  local rows = redis.call('ZREVRANGEBYSCORE', key, top, '(-inf', 'WITHSCORES', 'LIMIT', 0, size + 1)
  for i = 1, #rows, 2 do add(rows[i], rows[i + 1]) end
  if redis.call('ZCARD', key) - 1 >= length then  -- full: anything older may be trimmed
    local oldest = redis.call('ZRANGE', key, 1, 1, 'WITHSCORES')
    local score, id = tonumber(oldest[2]), oldest[1]
    if floor_score == nil or score > floor_score or (score == floor_score and id > floor_id) then
      floor_score, floor_id = score, id
    end
  end
  sources[#sources + 1] = {ids = ids, nums = nums, raws = raws, n = n, at = 1}
end

slice(timeline)
local missing = {'posts'}
for _, author in ipairs(redis.call('SMEMBERS', celebs)) do
  if author ~= '~' then
    local posts = 'feed:posts:' .. author
    if redis.call('EXISTS', posts) == 1 then
      redis.call('EXPIRE', posts, cache_ttl)
      slice(posts)
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
  if floor_score ~= nil and (best_num < floor_score or (best_num == floor_score and best_id < floor_id)) then
    break
  end
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
