// laxmon dashboard: live refresh and in-place forms. No framework, no build
// step. Every page works without this script; with it:
//  - pages marked data-live-page follow the API's event stream and refresh
//    their [data-live] sections in place, keeping what the user typed,
//    ticked, focused and selected;
//  - action forms (form[data-js]) are sent in the background and their
//    outcome is shown in the flash area, without leaving the page.
(function () {
  "use strict";

  var KINDS = ["state_change", "alarm", "notification", "action", "audit"];
  var timer = null;
  var busy = false;
  var again = false;

  function status(text, ok) {
    var el = document.getElementById("live-status");
    if (el) {
      el.textContent = text;
      el.className = "live-status " + (ok ? "on" : "off");
    }
  }

  function flash(text, bad) {
    var el = document.getElementById("flash");
    if (!el) return;
    el.textContent = text;
    el.className = "flash " + (bad ? "bad" : "good");
  }

  // What the user changed inside `root`: values differing from the
  // server's, ticks, focus and selection, keyed by element id.
  function save(root) {
    var saved = { fields: [], focus: null };
    var fields = root.querySelectorAll("input[id], textarea[id], select[id]");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type === "hidden") continue;
      if (f.type === "checkbox" || f.type === "radio") {
        if (f.checked !== f.defaultChecked) saved.fields.push([f.id, "checked", f.checked]);
      } else if (f.tagName === "SELECT") {
        var chosen = f.options[f.selectedIndex];
        if (chosen && !chosen.defaultSelected) saved.fields.push([f.id, "value", f.value]);
      } else if (f.value !== f.defaultValue) {
        saved.fields.push([f.id, "value", f.value]);
      }
    }
    var open = root.querySelectorAll("details[id]");
    for (var j = 0; j < open.length; j++) {
      if (open[j].open) saved.fields.push([open[j].id, "open", true]);
    }
    var a = document.activeElement;
    if (a && a.id && root.contains(a)) {
      var sel = null;
      try { sel = [a.selectionStart, a.selectionEnd, a.selectionDirection]; } catch (e) { sel = null; }
      saved.focus = [a.id, sel];
    }
    return saved;
  }

  function restore(saved) {
    saved.fields.forEach(function (s) {
      var f = document.getElementById(s[0]);
      if (f) f[s[1]] = s[2];
    });
    if (saved.focus) {
      var f = document.getElementById(saved.focus[0]);
      if (f) {
        f.focus({ preventScroll: true });
        var sel = saved.focus[1];
        if (sel && sel[0] !== null && f.setSelectionRange) {
          try { f.setSelectionRange(sel[0], sel[1], sel[2] || "none"); } catch (e) { /* not a text field */ }
        }
      }
    }
  }

  function swap(doc) {
    var parts = document.querySelectorAll("[data-live][id]");
    for (var i = 0; i < parts.length; i++) {
      var old = parts[i];
      var fresh = doc.getElementById(old.id);
      if (!fresh) continue;
      var saved = save(old);
      old.replaceWith(document.importNode(fresh, true));
      restore(saved);
    }
  }

  function refresh() {
    timer = null;
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { headers: { "X-Laxmon-Live": "1" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        swap(new DOMParser().parseFromString(html, "text/html"));
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { status("live updates interrupted", false); })
      .then(function () {
        busy = false;
        if (again) { again = false; schedule(500); }
      });
  }

  function schedule(delay) {
    if (timer === null) timer = setTimeout(refresh, delay);
  }

  function follow() {
    if (!document.body.hasAttribute("data-live-page") || !window.EventSource) return;
    var source = new EventSource("/api/v1/events");
    source.addEventListener("hello", function () { status("live", true); });
    KINDS.forEach(function (k) {
      source.addEventListener(k, function () { schedule(250); });
    });
    source.onerror = function () { status("reconnecting…", false); };
    source.onopen = function () { status("live", true); };
    // Ages, lateness and results without a state change move on too.
    setInterval(function () { schedule(0); }, 30000);
  }

  function newKey() {
    if (window.crypto && crypto.getRandomValues) {
      var a = new Uint8Array(12);
      crypto.getRandomValues(a);
      return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    }
    return String(Date.now()) + String(Math.random()).slice(2);
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.matches || !form.matches("form[data-js]")) return;
    var button = ev.submitter;
    // A button that sends the form elsewhere by GET (a preview) leaves the page.
    if (button && button.getAttribute("formmethod") === "get") return;
    ev.preventDefault();
    var body = new URLSearchParams(new FormData(form, button || undefined));
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    form.setAttribute("aria-busy", "true");
    flash("Working…", false);
    fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    })
      .then(function (r) {
        return r.json().catch(function () { return { ok: r.ok, message: "HTTP " + r.status }; });
      })
      .then(function (answer) {
        flash(answer.message || (answer.ok ? "Done." : "Not done."), !answer.ok);
        if (answer.ok) {
          form.querySelectorAll("input[type=text]").forEach(function (f) { f.value = ""; f.defaultValue = ""; });
          schedule(0);
        }
      })
      .catch(function (e) { flash("Not sent: " + e, true); })
      .then(function () {
        var key = form.querySelector("input[name=idem]");
        if (key) key.value = newKey();
        buttons.forEach(function (b) { b.disabled = false; });
        form.removeAttribute("aria-busy");
      });
  });

  // "/" jumps to the page's first search field, as in many consoles.
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "/" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
    var search = document.querySelector("input[type=search]");
    if (search) { ev.preventDefault(); search.focus(); }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", follow);
  } else {
    follow();
  }
})();
