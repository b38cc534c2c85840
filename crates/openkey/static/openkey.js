// OpenKey: the only script. It runs WebAuthn ceremonies for forms marked data-passkey:
// POST data-start (form fields as JSON) -> {ceremony, options}; navigator.credentials.create/get;
// POST data-finish {ceremony, credential} -> {redirect?}. Everything else is plain forms.
(function () {
  "use strict";
  function b64uToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bufToB64u(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }
  async function post(url, body) {
    var res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body),
    });
    var data = await res.json().catch(function () { return {}; });
    if (!res.ok) throw new Error(data.message || ("HTTP " + res.status));
    return data;
  }
  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = b64uToBuf(pk.challenge);
    pk.user.id = b64uToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
    return o;
  }
  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = b64uToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
    return o;
  }
  function encodeRegistration(c) {
    return {
      id: c.id, rawId: bufToB64u(c.rawId), type: c.type, extensions: {},
      response: {
        attestationObject: bufToB64u(c.response.attestationObject),
        clientDataJSON: bufToB64u(c.response.clientDataJSON),
        transports: c.response.getTransports ? c.response.getTransports() : [],
      },
    };
  }
  function encodeAssertion(c) {
    return {
      id: c.id, rawId: bufToB64u(c.rawId), type: c.type, extensions: {},
      response: {
        authenticatorData: bufToB64u(c.response.authenticatorData),
        clientDataJSON: bufToB64u(c.response.clientDataJSON),
        signature: bufToB64u(c.response.signature),
        userHandle: c.response.userHandle ? bufToB64u(c.response.userHandle) : null,
      },
    };
  }
  function showError(msg) {
    var el = document.getElementById("ok-error");
    if (!el) { alert(msg); return; }
    el.textContent = msg;
    el.hidden = false;
    el.focus();
  }
  async function run(form) {
    var fields = {};
    new FormData(form).forEach(function (v, k) { if (k !== "csrf") fields[k] = v; });
    var start = await post(form.dataset.start, fields);
    var credential;
    if (start.options.publicKey.user) {
      var created = await navigator.credentials.create(creationOptions(start.options));
      credential = encodeRegistration(created);
    } else {
      var got = await navigator.credentials.get(requestOptions(start.options));
      credential = encodeAssertion(got);
    }
    var done = await post(form.dataset.finish, { ceremony: start.ceremony, credential: credential });
    if (done.redirect) window.location.assign(done.redirect);
    else window.location.reload();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-passkey]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var btn = form.querySelector("button");
        if (btn) btn.disabled = true;
        run(form).catch(function (e) { showError(e.message || String(e)); })
          .finally(function () { if (btn) btn.disabled = false; });
      });
    });
  });
})();
