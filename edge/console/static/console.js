// gate-edge officer console: live updates over Server-Sent Events. No build step, no library.
// The server renders every lane card; this script only swaps in the HTML it sends.
(function () {
  "use strict";
  var page = document.body.getAttribute("data-page");
  if (page !== "lanes" && page !== "referrals") { return; }
  var live = document.getElementById("live");
  function status(state, text) {
    if (live) { live.setAttribute("data-state", state); live.textContent = text; }
  }
  var source = new EventSource("/events");
  source.addEventListener("hello", function () { status("live", "live"); });
  source.addEventListener("open", function () { status("live", "live"); });
  source.addEventListener("error", function () { status("down", "reconnecting…"); });
  source.addEventListener("lane", function (ev) {
    if (page !== "lanes") { return; }
    var msg = JSON.parse(ev.data);
    var old = document.getElementById("lane-" + msg.lane);
    var holder = document.createElement("div");
    holder.innerHTML = msg.html;
    var card = holder.firstElementChild;
    if (!card) { return; }
    card.classList.add("flash");
    if (old) { old.replaceWith(card); } else { document.getElementById("lanes").appendChild(card); }
  });
  function reloadIfIdle() {
    var active = document.activeElement;
    var typing = active && (active.tagName === "INPUT" || active.tagName === "SELECT");
    if (!typing) { window.location.reload(); }
  }
  source.addEventListener("passage", function (ev) {
    var msg = JSON.parse(ev.data);
    if (page === "referrals" && (msg.outcome === "refer" || msg.outcome === "hold")) { reloadIfIdle(); }
    if (page === "lanes") {
      var pending = document.querySelector(".pending");
      if (pending && (msg.outcome === "refer" || msg.outcome === "hold")) { pending.classList.add("flash"); }
    }
  });
  source.addEventListener("resync", function () { reloadIfIdle(); });
})();
