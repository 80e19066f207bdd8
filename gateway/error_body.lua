-- Every error the gateway answers has the services' JSON shape: code, status, message and,
-- for a bad argument, a google.rpc.BadRequest naming the field (services/kit/errors.py).
-- convert_grpc_status and local replies give {"code":5,"message":...}: add "status". The
-- transcoder's own 400s ("startTime: invalid value ...", 'Could not find field "x" ...')
-- name their field in the message at most: add the BadRequest, the message led by its field.
local names = {[1]="CANCELLED",[2]="UNKNOWN",[3]="INVALID_ARGUMENT",[4]="DEADLINE_EXCEEDED",
  [5]="NOT_FOUND",[6]="ALREADY_EXISTS",[7]="PERMISSION_DENIED",[8]="RESOURCE_EXHAUSTED",
  [9]="FAILED_PRECONDITION",[10]="ABORTED",[11]="OUT_OF_RANGE",[12]="UNIMPLEMENTED",
  [13]="INTERNAL",[14]="UNAVAILABLE",[15]="DATA_LOSS",[16]="UNAUTHENTICATED"}

-- The "message" string of a JSON body as it is written (escapes kept), or "".
local function message_of(text)
  local start = select(2, string.find(text, '"message":"', 1, true))
  if not start then return "" end
  local j = start + 1
  while true do
    local k = string.find(text, '["\\]', j)
    if not k then return "" end
    if string.byte(text, k) == 34 then return string.sub(text, start + 1, k - 1) end
    j = k + 2
  end
end

local function named(text)
  local message = message_of(text)
  local field = string.match(message, '^Could not find field \\"([%w_%.%-]+)\\"')
    or string.match(message, "^([%w_%.%[%]']+): ")
    or string.match(message, "for type ([%w_]+)$")
    or "body"
  local why = string.match(message, "^[%w_%.%[%]']+: (.*)$") or message
  if why == "" then field, why = "request", "could not be read as a request this API answers" end
  return '{"code":3,"status":"INVALID_ARGUMENT","message":"' .. field .. ": " .. why
    .. '","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest",'
    .. '"fieldViolations":[{"field":"' .. field .. '","description":"' .. why .. '"}]}]}'
end

function envoy_on_response(handle)
  local status = tonumber(handle:headers():get(":status") or "200")
  local ctype = handle:headers():get("content-type") or ""
  if status < 400 or not string.find(ctype, "application/json", 1, true) then return end
  local body = handle:body()
  if body == nil then return end
  local text = body:getBytes(0, body:length())
  local code = string.match(text, '^{"code":(%d+)')
  if code == nil then return end
  if code == "3" and not string.find(text, '"fieldViolations"', 1, true) then
    body:setBytes(named(text))
  elseif not string.find(text, '"status":', 1, true) then
    local name = names[tonumber(code)] or "UNKNOWN"
    body:setBytes('{"code":' .. code .. ',"status":"' .. name .. '"' .. string.sub(text, 9 + #code))
  end
end
