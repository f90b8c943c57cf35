// Live hand-off page: fetch the conversation's messages every few seconds and show them,
// without reloading the page (a half-written answer stays in its box). The fragment is
// HTML escaped by the server's template; the Spanish notices come from the page (content/console.yml).
// Polls do not extend the staff session.
(function () {
  const box = document.getElementById("messages");
  const status = document.getElementById("poll-status");
  if (!box || !box.dataset.poll) return;
  const every = 1000 * Number(box.dataset.seconds || 3);
  async function poll() {
    try {
      const response = await fetch(box.dataset.poll, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) { status.textContent = box.dataset.expired; return; }
      if (response.ok) {
        const html = await response.text();
        if (box.innerHTML !== html) box.innerHTML = html;
        status.textContent = "";
      } else {
        status.textContent = box.dataset.failed + " (" + response.status + ")";
      }
    } catch (error) {
      status.textContent = box.dataset.offline;
    }
    setTimeout(poll, every);
  }
  setTimeout(poll, every);
})();
