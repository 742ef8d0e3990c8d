-- wrk script of the soak benchmark (benchmarks/soak.py): one route class per wrk process.
--
-- Configured by environment variables, since wrk hands script arguments to the threads only:
--   SOAK_CLASS   sync | async | list | get | outcome | results | workflows
--   SOAK_KEY     the bearer key sent with every request
--   SOAK_IDS     a file of seeded run ids, one per line (get, outcome)
--   SOAK_EXP     the experiment id (results)
--   SOAK_THINK   mean think time between a client's requests, in ms (uniform in [0, 2 x mean])
--   SOAK_LOG     per-thread log prefix: "<status> <run_id>" for every answered run submission,
--                and "<status> ERR <body head>" for every answer >= 400, for the checker
--   SOAK_OUT     where done() writes this process's figures as JSON
-- Each client is a keep-alive connection with one request in flight (no pipelining).

local class = os.getenv("SOAK_CLASS")
local key = os.getenv("SOAK_KEY")
local think = tonumber(os.getenv("SOAK_THINK") or "0")
local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
local ids = {}
local threads = {}
local counter = 0
local sent = 0
local log = nil
statuses = {}  -- a global: done() reads it through thread:get()

local function read_ids()
  local path = os.getenv("SOAK_IDS")
  if path == nil then return end
  for line in io.lines(path) do
    if #line > 0 then ids[#ids + 1] = line end
  end
end

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  threads[#threads + 1] = thread
end

function init(args)
  read_ids()
  -- tid is set by setup() before init() runs in the thread's own state.
  math.randomseed(os.time() + (tid or 0) * 7919 + #class)
  log = io.open(os.getenv("SOAK_LOG") .. "." .. class .. "." .. tostring(tid or 0), "w")
  -- wrk never closes a thread's state: a line-buffered log loses nothing at exit.
  log:setvbuf("line")
end

local function pick()
  return ids[math.random(1, #ids)]
end

local function run_body(mode)
  sent = sent + 1
  local user = "u" .. math.random(1, 1000000)
  return string.format(
    '{"workflow":"greet","input":{"prompt":"soak %d"},"user_id":"%s","mode":"%s"}',
    sent, user, mode)
end

local LISTS = {
  "/v1/runs?workflow=greet&limit=50",
  "/v1/runs?workflow=greet&status=succeeded&limit=50",
  "/v1/runs?mode=async&limit=20",
  "/v1/runs?limit=100",
}
local READS = {
  "/v1/workflows",
  "/v1/workflows/greet/versions",
  "/v1/workflows/greet/labels",
  "/v1/workflows/greet/versions/v1",
  "/v1/workflows/greet/versions/v2",
}

function request()
  if class == "sync" then
    return wrk.format("POST", "/v1/run", headers, run_body("sync"))
  elseif class == "async" then
    return wrk.format("POST", "/v1/run", headers, run_body("async"))
  elseif class == "list" then
    return wrk.format("GET", LISTS[math.random(1, #LISTS)], headers)
  elseif class == "get" then
    return wrk.format("GET", "/v1/runs/" .. pick(), headers)
  elseif class == "outcome" then
    local i = math.random(1, #ids)
    -- One value per run (by its position), so a repeat is "unchanged", never a conflict.
    local value = (i % 3 == 0) and "true" or "false"
    return wrk.format("POST", "/v1/runs/" .. ids[i] .. "/outcome", headers,
      '{"converted":' .. value .. '}')
  elseif class == "results" then
    return wrk.format("GET", "/v1/experiments/" .. os.getenv("SOAK_EXP") .. "/results", headers)
  else
    return wrk.format("GET", READS[math.random(1, #READS)], headers)
  end
end

function delay()
  if think <= 0 then return 0 end
  return math.random() * 2 * think
end

function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
  if (class == "sync" or class == "async") and (status == 200 or status == 202) then
    local run_id = body:match('"run_id"%s*:%s*"([^"]+)"')
    log:write(status, " ", run_id or "?", "\n")
  elseif status >= 400 then
    log:write(status, " ERR ", (body:sub(1, 300):gsub("\n", " ")), "\n")
  end
end

function done(summary, latency, requests)
  local codes = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      codes[#codes + 1] = string.format("[%d,%d]", code, n)
    end
  end
  -- The whole latency histogram (microseconds -> count), so the checker can merge processes.
  local hist = {}
  for i = 1, #latency do
    local value, count = latency(i)
    hist[#hist + 1] = string.format("[%d,%d]", value, count)
  end
  local e = summary.errors
  local out = io.open(os.getenv("SOAK_OUT"), "w")
  out:write(string.format(
    '{"class":"%s","requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d},"statuses":[%s],"latency_us":[%s]}',
    class, summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(codes, ","), table.concat(hist, ",")))
  out:close()
end
