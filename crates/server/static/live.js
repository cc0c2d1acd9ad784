// Live updates of the rollout view: the server sends the new HTML of the
// live part as server-sent events; without JavaScript, a reload shows the same.
"use strict";
(function () {
  var live = document.getElementById("rollout-live");
  if (!live || !window.EventSource) { return; }
  var events = new EventSource(live.getAttribute("data-events") + window.location.search);
  events.addEventListener("rollout", function (e) { live.innerHTML = e.data; });
})();
