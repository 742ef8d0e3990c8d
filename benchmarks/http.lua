-- wrk script of the HTTP benchmark (benchmarks/http.py): POST /v1/run with a distinct user id
-- per request, the bearer key, and this process's figures written as JSON when it ends.
--
-- Configured by environment variables, since wrk hands script arguments to the threads only:
--   BENCH_KEY       the bearer key sent with every request
--   BENCH_OUT       where done() writes the figures
--   BENCH_WORKFLOW  the workflow to run (default product-video; its input is `prompt`)
-- Each connection has one request in flight (no pipelining), as a client of a model API would.

local key = os.getenv("BENCH_KEY")
local workflow = os.getenv("BENCH_WORKFLOW") or "product-video"
local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
local counter = 0
local sent = 0
local prefix = ""

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  -- Distinct user ids across threads and across the rounds of one benchmark.
  prefix = string.format("u%d-%d-", os.time(), tid or 0)
end

function request()
  sent = sent + 1
  local body = string.format(
    '{"workflow":"%s","input":{"prompt":"a red sneaker on a rainy street"},' ..
    '"user_id":"%s%d"}', workflow, prefix, sent)
  return wrk.format("POST", "/v1/run", headers, body)
end

function done(summary, latency, requests)
  -- The whole latency histogram (microseconds -> count), so rounds can be merged.
  local hist = {}
  for i = 1, #latency do
    local value, count = latency(i)
    hist[#hist + 1] = string.format("[%d,%d]", value, count)
  end
  local e = summary.errors
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d},"latency_us":[%s]}',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(hist, ",")))
  out:close()
end
