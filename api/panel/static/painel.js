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
  // Alerts (api/operations/live.py): the badge and the notification centre refetch their own
  // view (the server decides what each analyst sees).
  ["alert.raised", "alert.changed"].forEach(function (type) {
    source.addEventListener(type, function (event) {
      var data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      fire("tratativa:alerts", data);
    });
  });
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();

/* The analyst's workspace: keyboard and small helpers, no inline script (CSP script-src 'self').
   - "select all" checkbox of the cases list;
   - Ctrl/⌘+Enter sends the form of the focused textarea;
   - an HTMX request that fails shows the server's Portuguese message instead of nothing;
   - an upload field refuses a file over its size limit or of a type it does not take before
     sending, and says why (the server checks again). */
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.id === "selecionar-todos") {
      var boxes = document.querySelectorAll("#lote input[name='caso']");
      for (var i = 0; i < boxes.length; i++) {
        boxes[i].checked = target.checked;
      }
    }
    if (target && target.type === "file" && target.hasAttribute("data-max-bytes")) {
      checkFile(target);
    }
  });

  function checkFile(input) {
    var limit = parseInt(input.getAttribute("data-max-bytes"), 10);
    var types = (input.getAttribute("data-types") || "").split(",").filter(Boolean);
    var out = document.getElementById(input.getAttribute("data-message") || "");
    var reason = "";
    for (var i = 0; i < input.files.length; i++) {
      var file = input.files[i];
      if (limit && file.size > limit) {
        reason = "O arquivo " + file.name + " tem " + Math.ceil(file.size / 1024) +
          " KB; o limite é " + Math.floor(limit / 1024) + " KB.";
      } else if (types.length && types.indexOf(file.type) < 0) {
        reason = "O tipo de " + file.name + " (" + (file.type || "desconhecido") +
          ") não é aceito. Aceitos: " + types.join(", ") + ".";
      }
    }
    input.setCustomValidity(reason);
    if (out) {
      out.textContent = reason;
      out.hidden = !reason;
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) {
      return;
    }
    var target = event.target;
    if (target && target.tagName === "TEXTAREA" && target.form) {
      event.preventDefault();
      if (target.form.requestSubmit) {
        target.form.requestSubmit();
      } else {
        target.form.submit();
      }
    }
  });

  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("erro-htmx");
    if (!box) {
      return;
    }
    var xhr = event.detail && event.detail.xhr;
    var text = "Não foi possível atualizar. Tente de novo.";
    if (xhr && xhr.responseText) {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var message = doc.querySelector("[data-mensagem]");
      if (message && message.textContent) {
        text = message.textContent.trim();
      }
    }
    box.textContent = text;
    box.hidden = false;
  });
  document.addEventListener("htmx:afterSwap", function () {
    var box = document.getElementById("erro-htmx");
    if (box) {
      box.hidden = true;
    }
  });
})();
