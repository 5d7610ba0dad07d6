-- Milter throughput driver for the benchmark: miltertest (from OpenDKIM's tools) runs
-- `count` signing transactions, one connection each (as Postfix opens one per SMTP
-- session), against the filter at `sock`, sending the message in `file`. The same
-- script drives inkan-milterd and OpenDKIM, so both face the same client.
--   miltertest -D sock=unix:/path -D file=msg.eml -D count=100 -s milter-bench.lua
if sock == nil or file == nil then error("pass -D sock=... -D file=...") end
local total = tonumber(count or "100")

local f = assert(io.open(file, "rb"))
local data = f:read("*a")
f:close()
local split = string.find(data, "\r\n\r\n", 1, true)
if split == nil then error("no empty line in " .. file) end
local body = string.sub(data, split + 4)
local headers = {}
for line in string.gmatch(string.sub(data, 1, split + 1), "(.-)\r\n") do
  if string.match(line, "^[ \t]") and #headers > 0 then
    headers[#headers].value = headers[#headers].value .. "\r\n" .. line
  else
    local name, value = string.match(line, "^([^:]+):[ \t]?(.*)$")
    if name == nil then error("bad header line: " .. line) end
    headers[#headers + 1] = { name = name, value = value }
  end
end

local function ok(result, what)
  if result ~= nil then
    mt.echo("FAILED: " .. what .. ": " .. tostring(result))
    error(what)
  end
end

mt.set_timeout(30)
for i = 1, total do
  local conn = mt.connect(sock, 20, 0.05)
  if conn == nil then error("cannot connect to " .. sock) end
  ok(mt.negotiate(conn, nil, nil, nil), "negotiate")
  ok(mt.conninfo(conn, "localhost", "127.0.0.1"), "conninfo")
  -- steps a filter asked not to see are left out, as an MTA would
  if not mt.test_option(conn, SMFIP_NOHELO) then ok(mt.helo(conn, "localhost"), "helo") end
  mt.macro(conn, SMFIC_MAIL, "i", string.format("B%07d", i))
  ok(mt.mailfrom(conn, "<joe@example.org>"), "mailfrom")
  if not mt.test_option(conn, SMFIP_NORCPT) then ok(mt.rcptto(conn, "<suzie@example.net>"), "rcptto") end
  for _, h in ipairs(headers) do ok(mt.header(conn, h.name, h.value), "header") end
  ok(mt.eoh(conn), "eoh")
  ok(mt.bodystring(conn, body), "body")
  ok(mt.eom(conn), "eom")
  if not mt.eom_check(conn, MT_HDRINSERT, "DKIM-Signature") and not mt.eom_check(conn, MT_HDRADD, "DKIM-Signature") then
    mt.echo("FAILED: no DKIM-Signature in transaction " .. i)
    error("not signed")
  end
  ok(mt.disconnect(conn), "disconnect")
end
