-- wrk script for bench/nextcloud/run: one kind of Nextcloud request, from the environment,
-- and a count of answers with another status than expected (wrk itself counts only >= 400).
--   NC_METHOD  GET (default) or PROPFIND (then Depth: 1)
--   NC_AUTH    an Authorization header value (optional)
--   NC_OCS     1: send OCS-APIRequest: true and Accept: application/json
--   NC_EXPECT  the expected status (default 200)
local method = os.getenv("NC_METHOD") or "GET"
wrk.method = method
if method == "PROPFIND" then
    wrk.headers["Depth"] = "1"
    wrk.headers["Content-Type"] = "application/xml"
end
local auth = os.getenv("NC_AUTH")
if auth and auth ~= "" then
    wrk.headers["Authorization"] = auth
end
if os.getenv("NC_OCS") == "1" then
    wrk.headers["OCS-APIRequest"] = "true"
    wrk.headers["Accept"] = "application/json"
end
local expect = tonumber(os.getenv("NC_EXPECT") or "200")

local threads = {}
function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    unexpected = 0
end

function response(status, headers, body)
    if status ~= expect then
        unexpected = unexpected + 1
    end
end

function done(summary, latency, requests)
    local n = 0
    for _, t in ipairs(threads) do
        n = n + t:get("unexpected")
    end
    io.write(string.format("unexpected-status: %d\n", n))
end
