-- wrk request generator: the benign mix, with values that change on every
-- request (as in real traffic), browser headers, Host shop.example.com.
-- done() prints: TGRESULT requests duration_us p50_us p99_us non2xx socket_errors
local n = 0
local words = {"blue", "running", "shoes", "garden", "chair", "lampe", "été", "café", "red", "hat", "wool", "socks"}
local cities = {"Lyon", "Köln", "São Paulo", "O'Fallon", "Zürich", "Łódź"}

local function urlencode(s)
  return (s:gsub("[^%w%-._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function headers()
  return {
    ["Host"] = "shop.example.com",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ["Accept-Language"] = "en-US,en;q=0.5",
    ["Accept-Encoding"] = "gzip, deflate",
    ["Cookie"] = string.format("session=%08x%08x%08x; theme=dark", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff), n),
  }
end

function init(args)
  math.randomseed(os.time())
end

function request()
  n = n + 1
  local h = headers()
  local k = n % 6
  local w1, w2 = words[math.random(#words)], words[math.random(#words)]
  if k == 0 then
    return wrk.format("GET", "/", h)
  elseif k == 1 then
    return wrk.format("GET", string.format("/api/items?page=%d&sort=name&order=asc", math.random(0, 500)), h)
  elseif k == 2 then
    return wrk.format("GET", "/search?q=" .. urlencode(w1 .. " " .. w2 .. " " .. n) .. "&size=" .. math.random(36, 46), h)
  elseif k == 3 then
    return wrk.format("GET", string.format("/static/app.%06x.js?v=%d", math.random(0, 0xffffff), n), h)
  elseif k == 4 then
    h["Content-Type"] = "application/x-www-form-urlencoded"
    local body = "user=" .. urlencode(w1 .. n .. "@example.com") .. "&password=" .. urlencode("correct horse " .. w2 .. " " .. math.random(1, 1e6)) .. "&remember=on"
    return wrk.format("POST", "/login", h, body)
  end
  h["Content-Type"] = "application/json"
  local body = string.format('{"items":[{"sku":"SH-%d-BLU","qty":%d},{"sku":"HT-%d","qty":1}],"shipping":{"city":"%s","zip":"%05d"},"note":"it\'s for %s, leave at the door"}',
    math.random(36, 46), n % 9 + 1, math.random(1, 999), cities[math.random(#cities)], math.random(1000, 99999), w1)
  return wrk.format("POST", "/api/orders", h, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("TGRESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
