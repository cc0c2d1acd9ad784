-- Health of a Widget (a test CRD), in Argo CD's contract: `obj` in,
-- {status, message} out. Widgets report `status.widgetsReady` of
-- `spec.widgets`, and a `Broken` condition when they give up.
local hs = {status = "Progressing", message = "Waiting for widgets"}
if obj.status == nil then
  return hs
end
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Broken" and c.status == "True" then
      hs.status = "Degraded"
      hs.message = c.message
      return hs
    end
  end
end
local want = obj.spec.widgets or 1
local ready = obj.status.widgetsReady or 0
if ready >= want then
  hs.status = "Healthy"
  hs.message = string.format("%d of %d widgets ready", ready, want)
else
  hs.message = string.format("%d of %d widgets ready", ready, want)
end
return hs
