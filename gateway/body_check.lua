-- Refuses a request the transcoder would misread, before it gets there: a body field or
-- query parameter the call does not have (the transcoder would drop it without a word), or
-- a value of the wrong JSON kind (it would answer a 400 that names no field, or pass on a
-- message the service cannot decode). Answers 400 INVALID_ARGUMENT with a BadRequest that
-- names the field, as the services do. gateway/body_check.py generates ROUTES, TYPES and
-- NAMES above this from the descriptor set.
local byte, sub, find, concat = string.byte, string.sub, string.find, table.concat
local S, I, DEPTH = "", 1, 0
local MAX_DEPTH = 32
local ESCAPES = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
  r = "\r", t = "\t"}
local WANT = {
  s = "must be a string", b = "must be true or false", i32 = "must be a whole number",
  i64 = "must be a whole number (as a string or a number)", f = "must be a number",
  e = "must be one of the names the API document lists", m = "must be an object",
  map = "must be an object", ts = "must be an RFC 3339 timestamp like 2026-11-20T22:10:00Z",
  dur = 'must be a duration in seconds like "28800s"',
  mask = "must be field names separated by commas, like displayName,timeZone",
}

local function fail(path, why) error({path, why}, 0) end
local function ws() I = find(S, "[^ \t\r\n]", I) or (#S + 1) end
local function char() return sub(S, I, I) end
local function invalid(path) fail(path == "" and "body" or path, "is not valid JSON there") end

local function read_string(path)
  local out, j = {}, I + 1
  while true do
    local k = find(S, '["\\]', j)
    if not k then invalid(path) end
    out[#out + 1] = sub(S, j, k - 1)
    if byte(S, k) == 34 then I = k + 1; return concat(out) end
    local e = sub(S, k + 1, k + 1)
    if e == "u" then
      if not find(sub(S, k + 2, k + 5), "^%x%x%x%x$") then invalid(path) end
      out[#out + 1] = "\0"  -- a character we never compare equal to anything
      j = k + 6
    elseif ESCAPES[e] then
      out[#out + 1] = ESCAPES[e]; j = k + 2
    else
      invalid(path)
    end
  end
end

local function read_number(path)
  local a, b = find(S, "^-?%d+%.?%d*[eE]?[-+]?%d*", I)
  if not a then invalid(path) end
  I = b + 1
  return sub(S, a, b)
end

local function literal(word)
  if sub(S, I, I + #word - 1) == word then I = I + #word; return true end
  return false
end

local skip
local function deeper(path)
  DEPTH = DEPTH + 1
  if DEPTH > MAX_DEPTH then fail(path == "" and "body" or path, "is nested too deeply") end
end

-- Any JSON value (google.protobuf.Struct and Value), checked for syntax only.
skip = function(path)
  ws()
  local c = char()
  if c == '"' then read_string(path)
  elseif c == "{" or c == "[" then
    deeper(path)
    local close = c == "{" and "}" or "]"
    I = I + 1; ws()
    if char() == close then I = I + 1; DEPTH = DEPTH - 1; return end
    while true do
      if c == "{" then
        ws(); if char() ~= '"' then invalid(path) end
        read_string(path); ws()
        if char() ~= ":" then invalid(path) end
        I = I + 1
      end
      skip(path); ws()
      local d = char()
      I = I + 1
      if d == close then DEPTH = DEPTH - 1; return end
      if d ~= "," then invalid(path) end
    end
  elseif find(c, "^[-%d]") then read_number(path)
  elseif not (literal("true") or literal("false") or literal("null")) then invalid(path) end
end

local function integer_in(text, low, high)
  local n = tonumber(text)
  return n ~= nil and n == math.floor(n) and n >= low and n <= high
end

local function check_text(kind, text, path)
  if kind == "s" then return end
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
    if integer_in(text, -2147483648, 4294967295) then return end
  elseif kind == "i64" then
    if find(text, "^%-?%d+$") and #text <= 20 then return end
  elseif kind == "f" then
    if tonumber(text) or text == "NaN" or text == "Infinity" or text == "-Infinity" then return end
  end
  fail(path, WANT[kind])
end

local object, map
local function value(kind, extra, repeated, path)
  ws()
  if literal("null") then return end
  if repeated then
    if char() ~= "[" then fail(path, "must be a list") end
    deeper(path)
    I = I + 1; ws()
    if char() == "]" then I = I + 1; DEPTH = DEPTH - 1; return end
    local n = 0
    while true do
      value(kind, extra, false, path .. "[" .. n .. "]")
      n = n + 1; ws()
      local c = char()
      I = I + 1
      if c == "]" then DEPTH = DEPTH - 1; return end
      if c ~= "," then invalid(path) end
    end
  end
  if kind == "m" then return object(extra, path) end
  if kind == "map" then return map(extra, path) end
  if kind == "any" then return skip(path) end
  local c = char()
  if kind == "b" then
    if not (literal("true") or literal("false")) then fail(path, WANT.b) end
  elseif c == '"' then
    check_text(kind, read_string(path), path)
  elseif find(c, "^[-%d]") and (kind == "i32" or kind == "i64" or kind == "f" or kind == "e") then
    local text = read_number(path)
    if kind ~= "f" and not integer_in(text, -2^63, 2^64) then fail(path, WANT[kind]) end
    if kind == "i32" then check_text(kind, text, path) end
  else
    fail(path, WANT[kind])
  end
end

local function members(path, each)
  if char() ~= "{" then fail(path == "" and "body" or path, "must be an object") end
  deeper(path)
  I = I + 1; ws()
  if char() == "}" then I = I + 1; DEPTH = DEPTH - 1; return end
  while true do
    ws()
    if char() ~= '"' then invalid(path) end
    local key = read_string(path)
    ws()
    if char() ~= ":" then invalid(path) end
    I = I + 1
    each(key)
    ws()
    local c = char()
    I = I + 1
    if c == "}" then DEPTH = DEPTH - 1; return end
    if c ~= "," then invalid(path) end
  end
end

object = function(type_name, path)
  local fields = TYPES[type_name]
  members(path, function(key)
    local field = fields[key]
    local at = (path == "" and "" or path .. ".") .. (field and field[1] or key)
    if not field then
      fail(at, "is not a field here; the fields are " .. NAMES[type_name])
    end
    value(field[2], field[4], field[3], at)
  end)
end

map = function(spec, path)
  members(path, function(key)
    value(spec[1], spec[2], false, path .. "['" .. key .. "']")
  end)
end

local function quote(text)
  return '"' .. text:gsub('[%c"\\]', function(c)
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
  S, I, DEPTH = body:getBytes(0, body:length()), 1, 0
  local ok, err = pcall(function()
    ws()
    object(route[3], "")
    ws()
    if I <= #S then fail("body", "has more after its JSON object") end
  end)
  S = ""
  if ok then return end
  if type(err) == "table" then return refuse(handle, err[1], err[2]) end
  refuse(handle, "body", "could not be read as JSON")
end
