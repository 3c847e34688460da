-- Argo CD health check for pulsebase.io/PulseBase.
--
-- Argo CD runs this with the live object in the global `obj` and reads `status` and
-- `message` from the table it returns. Unless `useOpenLibs` is set, only the base and
-- table libraries are open: no string or math functions, so messages are joined with
-- `..`. The syntax stays within Lua 5.1, the dialect of the interpreter Argo CD embeds.
--
-- docs/argocd/argocd-cm.yaml embeds this file; tests/unit/argocd fails when they differ.

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, each in ipairs(status.conditions) do
    if each.type == kind then
      return each
    end
  end
  return nil
end

local function said(message, otherwise)
  if type(message) == "string" and message ~= "" then
    return message
  end
  return otherwise
end

local function health(verdict, message)
  return { status = verdict, message = message }
end

local meta = obj.metadata or {}
local status = obj.status

-- Whatever status says, the object is on its way out: the operator holds its finalizer
-- only while it releases what the deletion policy says to release.
if meta.deletionTimestamp ~= nil then
  return health("Progressing", "The PulseBase is being deleted.")
end

-- While paused, the rest of status is as last observed and may describe an older spec.
local suspended = condition(status, "Suspended")
if suspended ~= nil and suspended.status == "True" then
  return health("Suspended", said(suspended.message, "Reconciliation is paused."))
end

-- Status written for an older generation says nothing about the current spec: right
-- after creation, and right after any change such as a new spec.version.
local generation = meta.generation
local observed = nil
if status ~= nil then
  observed = status.observedGeneration
end
if observed == nil or (generation ~= nil and observed < generation) then
  if generation == nil then
    return health("Progressing", "Waiting for the operator to report status.")
  end
  return health(
    "Progressing",
    "Waiting for the operator to observe generation " .. tostring(generation) .. "."
  )
end

local ready = condition(status, "Ready")
if status.phase == "Ready" and ready ~= nil and ready.status == "True" then
  return health("Healthy", said(status.message, "All components are ready."))
end

if status.phase == "Degraded" or status.phase == "Failed" then
  local why = nil
  if ready ~= nil then
    why = ready.message
  end
  return health(
    "Degraded",
    said(status.message, said(why, "The operator reports phase " .. status.phase .. "."))
  )
end

return health("Progressing", said(status.message, "The operator is bringing the stack up."))
