-- bench/sandbox/rotate.lua - wrk script: cycles through the requests listed
-- in the file named by $SB_REQUESTS, one per line:
--   METHOD<TAB>PATH<TAB>Header: value[<TAB>Header: value...]
-- and counts responses by status class (printed at the end).
local reqs = {}
local idx = 0
local status = {}

function init(args)
	local f = assert(io.open(os.getenv("SB_REQUESTS"), "r"))
	for line in f:lines() do
		local fields = {}
		for field in string.gmatch(line, "[^\t]+") do
			table.insert(fields, field)
		end
		local headers = {}
		for i = 3, #fields do
			local k, v = string.match(fields[i], "^([^:]+):%s*(.*)$")
			if k then headers[k] = v end
		end
		table.insert(reqs, wrk.format(fields[1], fields[2], headers))
	end
	f:close()
	idx = math.random(#reqs) - 1
end

function request()
	idx = idx % #reqs + 1
	return reqs[idx]
end

function response(code, headers, body)
	local k = math.floor(code / 100) .. "xx"
	status[k] = (status[k] or 0) + 1
end

function done(summary, latency, requests)
	io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d bytes=%d\n",
		summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
		latency:percentile(50) / 1000, latency:percentile(99) / 1000,
		summary.errors.connect + summary.errors.read + summary.errors.write +
		summary.errors.status + summary.errors.timeout, summary.bytes))
end
