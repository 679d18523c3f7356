-- post.lua - wrk script for bench/webhooks: each wrk thread posts its own
-- share of the deliveries hookgen wrote (HOOK_PREFIX.<thread number>), each
-- once, in order, to the URL given to wrk. When a thread has sent them all
-- it stops (the run is bounded in count as well as by wrk's -d). done()
-- prints one "RESULT" line the run script reads.
--
-- HOOK_PREFIX: the prefix given to hookgen --out
-- HOOK_TOPIC:  X-Shopify-Topic (default orders/create)
-- HOOK_CYCLE:  "1" to start a thread's list again instead of stopping (for
--              the ceiling runs, where repeats do not matter)
-- Without HOOK_PREFIX wrk sends its own request (GET of the URL) and the
-- script only reports.

local prefix = os.getenv("HOOK_PREFIX")
local topic = os.getenv("HOOK_TOPIC") or "orders/create"
local cycle = os.getenv("HOOK_CYCLE") == "1"
local next_part = 0
local threads = {}

function setup(thread)
   thread:set("part", next_part)
   next_part = next_part + 1
   table.insert(threads, thread)
end

function init(args)
   sent = 0
   exhausted = 0
   if not prefix then
      return
   end
   local f = assert(io.open(prefix .. "." .. part, "r"))
   reqs = {}
   for line in f:lines() do
      local wid, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", wrk.path, {
         ["Host"] = wrk.headers["Host"],
         ["Content-Type"] = "application/json",
         ["X-Shopify-Topic"] = topic,
         ["X-Shopify-Hmac-Sha256"] = sig,
         ["X-Shopify-Shop-Domain"] = "bench.myshopify.com",
         ["X-Shopify-API-Version"] = "2026-07",
         ["X-Shopify-Webhook-Id"] = wid,
      }, body)
   end
   f:close()
end

-- Without HOOK_PREFIX the script only reports (wrk sends its own request).
if prefix then
   function request()
      if sent >= #reqs then
         if cycle then
            sent = 0
         else
            -- every delivery of this thread is out: stop; wrk still sends
            -- the request returned here, so make it one that stores nothing
            exhausted = 1
            wrk.thread:stop()
            return wrk.format("GET", "/healthz")
         end
      end
      sent = sent + 1
      return reqs[sent]
   end
end

function done(summary, latency, requests)
   local sent_total, exhausted_threads = 0, 0
   for _, t in ipairs(threads) do
      sent_total = sent_total + (t:get("sent") or 0)
      exhausted_threads = exhausted_threads + (t:get("exhausted") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d non2xx=%d connect_err=%d read_err=%d write_err=%d " ..
      "timeouts=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d sent=%d exhausted_threads=%d\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, sent_total, exhausted_threads))
end
