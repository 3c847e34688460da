-- Runs an Argo CD health script the way Argo CD does, under a stock Lua interpreter:
--
--   lua5.4 harness.lua SCRIPT < FIXTURE
--
-- FIXTURE is a Lua chunk that returns the object (health_check.py writes it from the
-- object's JSON). Prints the returned status, a newline, then the message.

local script_path = arg[1]
local obj = assert(load(io.read("a"), "=fixture", "t", {}))()
local file = assert(io.open(script_path))
local source = file:read("a")
file:close()

-- Argo CD opens the base and table libraries and a reduced os; a script that reaches for
-- anything else works here only if it would work there.
local sandbox = { obj = obj, table = table, os = { time = os.time, date = os.date } }
for _, name in ipairs({
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print",
  "rawequal", "rawget", "rawset", "select", "setmetatable", "tonumber", "tostring",
  "type", "xpcall",
}) do
  sandbox[name] = _G[name]
end
sandbox._G = sandbox

-- Strings' methods come from the string library, which Argo CD leaves closed.
local strings = getmetatable("")
local methods = strings.__index
strings.__index = nil
local ok, result = pcall(assert(load(source, "=" .. script_path, "t", sandbox)))
strings.__index = methods

if not ok then
  io.stderr:write(tostring(result), "\n")
  os.exit(2)
end
if type(result) ~= "table" then
  io.stderr:write("the script returned a ", type(result), ", not a table\n")
  os.exit(3)
end
io.write(tostring(result.status), "\n", tostring(result.message))
