-- Every other kind of every *.tidegate.dev group: Ready says it all.
local hs = {status = "Progressing", message = "No Ready condition yet"}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      if c.status == "True" then
        hs.status = "Healthy"
      elseif c.status == "False" then
        hs.status = "Degraded"
      end
      hs.message = c.message or ""
    end
  end
end
return hs
