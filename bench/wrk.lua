-- wrk script for bench/run.sh: every request of a run goes to a path made
-- from one line of a list file, and every answer is checked.
--
-- Environment:
--   BENCH_LIST     file with one id or claim code per line
--   BENCH_METHOD   GET (default) or POST (sends the body "{}" as JSON)
--   BENCH_PREFIX   path before the item, e.g. /v2/certificates/
--   BENCH_SUFFIX   path after the item, e.g. /redemptions (default empty)
--   BENCH_EXPECT   the only acceptable status (default 200)
--   BENCH_KEY, BENCH_SECRET   merchant credentials (optional)
--   BENCH_ONCE     1: every item is used at most once (redemptions): wrk
--                  thread t of BENCH_THREADS takes items OFFSET+t,
--                  OFFSET+t+T, ...; a thread out of items sets exhausted=1
--                  (the run is void) and sends GET /healthz from then on;
--                  0 (default): threads cycle through the list from
--                  different starting points
--   BENCH_OFFSET   first item index (0-based) for BENCH_ONCE
--   BENCH_THREADS  the -t given to wrk (BENCH_ONCE needs it)
--
-- done() prints one line for the script:
--   RESULT requests=... duration_us=... rps=... p50_us=... p99_us=...
--          ok=... bad=... issued=... errors=... next_offset=... first_bad=...

local threads = {}
local created = 0

function setup(thread)
  thread:set("tid", created)
  created = created + 1
  table.insert(threads, thread)
end

-- Thread state (globals, so done() can read them with thread:get).
ok, bad, issued, exhausted, first_bad = 0, 0, 0, 0, ""
local items, n, i, step, limit, method, prefix, suffix, expect, headers, body

function init(args)
  items = {}
  for line in io.lines(os.getenv("BENCH_LIST")) do
    if line ~= "" then items[#items + 1] = line end
  end
  n = #items
  if n == 0 then error("empty list " .. os.getenv("BENCH_LIST")) end
  local tid = wrk.thread:get("tid")
  method = os.getenv("BENCH_METHOD") or "GET"
  prefix = os.getenv("BENCH_PREFIX") or "/"
  suffix = os.getenv("BENCH_SUFFIX") or ""
  expect = tonumber(os.getenv("BENCH_EXPECT") or "200")
  headers = { ["Accept"] = "application/json" }
  local key, secret = os.getenv("BENCH_KEY"), os.getenv("BENCH_SECRET")
  if key and key ~= "" then
    headers["X-Merchant-Key"] = key
    headers["X-Merchant-Secret"] = secret
  end
  if method == "POST" then
    headers["Content-Type"] = "application/json"
    body = "{}"
  end
  if os.getenv("BENCH_ONCE") == "1" then
    step = tonumber(os.getenv("BENCH_THREADS") or "1")
    i = tonumber(os.getenv("BENCH_OFFSET") or "0") + tid
    limit = n
  else
    -- Spread the threads' starting points over the list.
    step = 1
    i = math.floor(n * tid / 8) % n
    limit = nil
  end
end

function request()
  local item
  if limit then
    if i >= limit then
      -- Out of items: the run is void (bench/run.sh repeats it with more).
      -- Keep the connection busy with something that changes nothing.
      exhausted = 1
      return wrk.format("GET", "/healthz", headers)
    end
    item = items[i + 1]
    i = i + step
  else
    item = items[i + 1]
    i = (i + 1) % n
  end
  issued = issued + 1
  return wrk.format(method, prefix .. item .. suffix, headers, body)
end

function response(status, hdrs, resp_body)
  if exhausted == 1 then return end
  if status == expect then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(string.gsub(resp_body or "", "%s+", " "), 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local t_ok, t_bad, t_issued, t_exhausted, max_issued, fb = 0, 0, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    t_ok = t_ok + t:get("ok")
    t_bad = t_bad + t:get("bad")
    local iss = t:get("issued")
    t_issued = t_issued + iss
    if iss > max_issued then max_issued = iss end
    t_exhausted = t_exhausted + t:get("exhausted")
    if fb == "" then fb = t:get("first_bad") end
  end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d ok=%d bad=%d issued=%d " ..
    "errors=%d connect=%d read=%d write=%d status=%d timeout=%d exhausted=%d next_offset=%d first_bad=%s\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), t_ok, t_bad, t_issued,
    errors, e.connect, e.read, e.write, e.status, e.timeout, t_exhausted,
    offset + max_issued * #threads, string.gsub(fb, "%s", "_")))
end
