-- Refuses a request the transcoder would misread, before it gets there: a body field or
-- query parameter the call does not have (the transcoder would drop it without a word), or
-- a value of the wrong JSON kind (it would answer a 400 that names no field, or pass on a
-- message the service cannot decode). Answers 400 INVALID_ARGUMENT with a BadRequest that
-- names the field, as the services do. gateway/body_check.py generates ROUTES, TYPES, NAMES
-- and REFUSED_HEADER above this from the descriptor set.
--
-- One pass over the body, no copies: a field's path is kept as a stack of its parts and
-- written out only for the answer (TYPES name each field ".proto_name" for it), strings are looked into only where their content is
-- checked (names, timestamps, durations, masks, numbers).
local byte, sub, find, concat = string.byte, string.sub, string.find, table.concat
local S, I, DEPTH, PATH = "", 1, 0, {}
local MAX_DEPTH = 32
local QUOTE, BACKSLASH, OPEN, CLOSE, OPEN_LIST, CLOSE_LIST, COMMA, COLON =
  34, 92, 123, 125, 91, 93, 44, 58
local ESCAPES = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
  r = "\r", t = "\t"}
local WANT = {
  s = "must be a string", b = "must be true or false",
  i32 = "must be a whole number from -2147483648 to 2147483647",
  u32 = "must be a whole number from 0 to 4294967295",
  i64 = "must be a whole number (as a string or a number)", f = "must be a number",
  e = "must be the name of one of its values (see the API document)", m = "must be an object",
  map = "must be an object", ts = "must be an RFC 3339 timestamp like 2026-11-20T22:10:00Z",
  dur = 'must be a duration in seconds like "28800s"',
  mask = "must be field names separated by commas, like displayName,timeZone",
}

-- PATH holds ".field" strings, list indexes (numbers) and map keys ({key}); KEYS marks
-- the map keys' places, so nothing is built unless a request is refused.
local KEYS = {}
local function where()
  local parts = {}
  for n, part in ipairs(PATH) do
    if type(part) == "number" then parts[n] = "[" .. part .. "]"
    elseif KEYS[n] then parts[n] = "['" .. part .. "']"
    else parts[n] = part end
  end
  local path = concat(parts)
  if path == "" then return "body" end
  return (path:gsub("^%.", ""))
end
local NUMERIC = {i32 = true, u32 = true, i64 = true, f = true, e = true}
local function fail(why) error({where(), why}, 0) end
local function invalid() fail("is not valid JSON there") end
local function ws() I = find(S, "[^ \t\r\n]", I) or (#S + 1) end
local function expect(b) if byte(S, I) ~= b then invalid() end; I = I + 1 end

-- A string whose content matters, decoded (a \u escape stands for no character we compare).
local function read_string()
  local k = find(S, '["\\]', I + 1)
  if k and byte(S, k) == QUOTE then
    local text = sub(S, I + 1, k - 1)
    I = k + 1
    return text
  end
  local out, j = {}, I + 1
  while true do
    k = find(S, '["\\]', j)
    if not k then invalid() end
    out[#out + 1] = sub(S, j, k - 1)
    if byte(S, k) == QUOTE then I = k + 1; return concat(out) end
    local e = sub(S, k + 1, k + 1)
    if e == "u" then
      if not find(sub(S, k + 2, k + 5), "^%x%x%x%x$") then invalid() end
      out[#out + 1] = "\0"
      j = k + 6
    elseif ESCAPES[e] then
      out[#out + 1] = ESCAPES[e]; j = k + 2
    else
      invalid()
    end
  end
end

-- A string whose content does not matter: only where it ends.
local function pass_string()
  local j = I + 1
  while true do
    local k = find(S, '["\\]', j)
    if not k then invalid() end
    if byte(S, k) == QUOTE then I = k + 1; return end
    j = k + 2
  end
end

-- A JSON number: -?digits, then .digits, then e[+-]digits, each part whole or absent.
local function read_number()
  local a, b = find(S, "^-?%d+", I)
  if not a then invalid() end
  local _, c = find(S, "^%.%d+", b + 1)
  b = c or b
  _, c = find(S, "^[eE][-+]?%d+", b + 1)
  b = c or b
  I = b + 1
  return sub(S, a, b)
end

local function literal(word)
  if sub(S, I, I + #word - 1) == word then I = I + #word; return true end
  return false
end

local function deeper()
  DEPTH = DEPTH + 1
  if DEPTH > MAX_DEPTH then fail("is nested too deeply") end
end

-- The members of an object, or the items of a list: `each` reads one (the key read first).
local function members(close, keyed, each)
  deeper()
  I = I + 1; ws()
  if byte(S, I) == close then I = I + 1; DEPTH = DEPTH - 1; return end
  local n = 0
  while true do
    local key
    if keyed then
      ws(); if byte(S, I) ~= QUOTE then invalid() end
      key = read_string(); ws(); expect(COLON)
    end
    each(key, n)
    n = n + 1
    ws()
    local b = byte(S, I)
    I = I + 1
    if b == close then DEPTH = DEPTH - 1; return end
    if b ~= COMMA then I = I - 1; invalid() end
  end
end

-- Any JSON value (google.protobuf.Struct and Value), checked for syntax only.
local function skip()
  ws()
  local b = byte(S, I)
  if b == QUOTE then pass_string()
  elseif b == OPEN then members(CLOSE, true, function() skip() end)
  elseif b == OPEN_LIST then members(CLOSE_LIST, false, function() skip() end)
  elseif b == 45 or (b and b >= 48 and b <= 57) then read_number()
  elseif not (literal("true") or literal("false") or literal("null")) then invalid() end
end

local function integer_in(text, low, high)
  local n = tonumber(text)
  return n ~= nil and n == math.floor(n) and n >= low and n <= high
end

local function check_text(kind, text)
  if kind == "ts" then
    local rest = text:match("^%d%d%d%d%-%d%d%-%d%d[Tt]%d%d:%d%d:%d%d(.*)$")
    if rest then rest = rest:gsub("^%.%d+", "") end
    if rest and (rest == "Z" or rest == "z" or find(rest, "^[-+]%d%d:%d%d$")) then return end
  elseif kind == "dur" then
    if find(text, "^%-?%d+s$") or find(text, "^%-?%d+%.%d+s$") then return end
  elseif kind == "mask" then
    if find(text, "^[%w_.,]*$") then return end
  elseif kind == "e" then
    if find(text, "^[%a_][%w_]*$") then return end
  elseif kind == "i32" then
    if integer_in(text, -2147483648, 2147483647) then return end
  elseif kind == "u32" then
    if integer_in(text, 0, 4294967295) then return end
  elseif kind == "i64" then
    if find(text, "^%-?%d+$") and #text <= 20 then return end
  elseif kind == "f" then
    if tonumber(text) or text == "NaN" or text == "Infinity" or text == "-Infinity" then return end
  end
  fail(WANT[kind])
end

local object, map
local function value(kind, extra, repeated)
  ws()
  if literal("null") then return end
  if repeated then
    if byte(S, I) ~= OPEN_LIST then fail("must be a list") end
    local top = #PATH + 1
    members(CLOSE_LIST, false, function(_, n)
      PATH[top] = n
      value(kind, extra, false)
      PATH[top] = nil
    end)
    return
  end
  if kind == "m" then return object(extra) end
  if kind == "map" then return map(extra) end
  if kind == "any" then return skip() end
  local b = byte(S, I)
  if kind == "b" then
    if not (literal("true") or literal("false")) then fail(WANT.b) end
  elseif b == QUOTE then
    if kind == "s" then pass_string() else check_text(kind, read_string()) end
  elseif (b == 45 or (b and b >= 48 and b <= 57)) and NUMERIC[kind] then
    local text = read_number()
    if kind == "i64" or kind == "e" then
      if not integer_in(text, -2^63, 2^64) then fail(WANT[kind]) end
    else
      check_text(kind, text)
    end
  else
    fail(WANT[kind])
  end
end

object = function(type_name)
  if byte(S, I) ~= OPEN then fail("must be an object") end
  local fields, top = TYPES[type_name], #PATH + 1
  members(CLOSE, true, function(key)
    local field = fields[key]
    PATH[top] = field and field[1] or ("." .. key)
    if not field then fail("is not a field here; the fields are " .. NAMES[type_name]) end
    value(field[2], field[4], field[3])
    PATH[top] = nil
  end)
end

map = function(spec)
  if byte(S, I) ~= OPEN then fail("must be an object") end
  local top = #PATH + 1
  KEYS[top] = true
  members(CLOSE, true, function(key)
    PATH[top] = key
    value(spec[1], spec[2], false)
    PATH[top] = nil
  end)
  KEYS[top] = nil
end

-- A JSON string of `text`; bytes past ASCII are written as the characters U+0080..U+00FF,
-- so that a name made of broken UTF-8 still makes valid JSON.
local function quote(text)
  return '"' .. text:gsub('[%c"\\\128-\255]', function(c)
    return string.format("\\u%04x", byte(c))
  end) .. '"'
end

local function refuse(handle, field, why)
  if field == "" or find(field, "[.]$") then field = field .. "(an empty name)" end
  local body = '{"code":3,"status":"INVALID_ARGUMENT","message":' .. quote(field .. ": " .. why)
    .. ',"details":[{"@type":"type.googleapis.com/google.rpc.BadRequest",'
    .. '"fieldViolations":[{"field":' .. quote(field) .. ',"description":' .. quote(why)
    .. "}]}]}"
  handle:headers():replace(REFUSED_HEADER, "1")
  handle:respond({[":status"] = "400", ["content-type"] = "application/json"}, body)
end

local function route_of(method, path)
  for _, route in ipairs(ROUTES) do
    if route[1] == method and find(path, route[2]) then return route end
  end
end

local function unescape(text)
  local spaced = text:gsub("%+", " ")
  return (spaced:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local path, query = (headers:get(":path") or ""):match("^([^?]*)%??(.*)$")
  local route = route_of(headers:get(":method"), path)
  if not route then return end
  for pair in query:gmatch("[^&]+") do
    local name = unescape(pair:match("^[^=]*"))
    if not route[4][name:match("^[^.]*")] then
      return refuse(handle, name, "is not a query parameter of this call; the parameters are "
        .. route[5])
    end
  end
  if not route[3] then return end
  local body = handle:body()
  if body == nil or body:length() == 0 then return end
  S, I, DEPTH, PATH, KEYS = body:getBytes(0, body:length()), 1, 0, {}, {}
  local ok, err = pcall(function()
    ws()
    object(route[3])
    ws()
    if I <= #S then PATH = {}; fail("has more after its JSON object") end
  end)
  S = ""
  if ok then return end
  if type(err) == "table" then return refuse(handle, err[1], err[2]) end
  refuse(handle, "body", "could not be read as JSON")
end
