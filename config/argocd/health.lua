-- Argo CD health check for securetunnel.dev/SecureTunnel.
-- Healthy: connectors ready and the current spec rolled out.
-- Degraded: the operator refuses the spec or token, a name conflict, a stuck rollout,
--           connectors lost, or an origin the sandbox could not open.
-- Progressing: not yet reconciled, or rolling out.
local hs = {}
local function condition(type)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local ready = condition("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile"
  return hs
end
if obj.metadata ~= nil and obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. obj.metadata.generation
  return hs
end

local blocked = { InvalidSpec = true, TokenSecretMissing = true, TokenInvalid = true, CAPoolMissing = true, NameConflict = true }
if ready.status == "False" and blocked[ready.reason] then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. (ready.message or "")
  return hs
end

local degraded = condition("Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.reason .. ": " .. (degraded.message or "")
  return hs
end

local progressing = condition("Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = progressing.message or "Rolling out"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Connectors ready"
  return hs
end

hs.status = "Progressing"
hs.message = ready.message or "Connectors starting"
return hs
