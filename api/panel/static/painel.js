/* Live panel: one EventSource on /painel/events; bus events become htmx triggers on <body>
   (tratativa:inbox, tratativa:conv-<id>, tratativa:case-<id>) that the page's fragments listen
   to. "ready" means the server's subscription is live: refetch once (tratativa:resync) so
   nothing raised while connecting is missed. No eval, no inline script (CSP script-src 'self'). */
(function () {
  "use strict";
  var body = document.body;
  var url = body && body.getAttribute("data-events-url");
  if (!url || !window.EventSource || !window.htmx) {
    return;
  }
  var source = new EventSource(url);
  var types = [
    "handoff.requested",
    "conversation.claimed",
    "conversation.released",
    "conversation.resolved",
    "message.new"
  ];

  function fire(name, detail) {
    window.htmx.trigger(body, name, detail);
  }

  source.addEventListener("ready", function () {
    body.setAttribute("data-live", "1");
    fire("tratativa:resync", {});
  });
  source.addEventListener("error", function () {
    body.setAttribute("data-live", "0");
  });
  types.forEach(function (type) {
    source.addEventListener(type, function (event) {
      var data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      fire("tratativa:inbox", data);
      if (data.conversation_id) {
        fire("tratativa:conv-" + String(data.conversation_id), data);
      }
      if (data.case_id) {
        fire("tratativa:case-" + String(data.case_id), data);
      }
    });
  });
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();
