// The admin's circuit breaker page: select all, confirm "Reset all", and keep the state column live
// by re-reading the status API every 5 seconds (same permission as the page). A file, not inline:
// the Content-Security-Policy allows scripts from this site only.
(function () {
  var table = document.getElementById("breakers");
  document.getElementById("select-all").addEventListener("change", function (event) {
    table.querySelectorAll("input[name=names]").forEach(function (box) { box.checked = event.target.checked; });
  });
  document.querySelectorAll("[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.dataset.confirm)) { event.preventDefault(); }
    });
  });
  function refresh() {
    fetch(table.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        data.breakers.forEach(function (status) {
          var row = table.querySelector('tr[data-breaker="' + CSS.escape(status.name) + '"]');
          if (!row) { return; }
          var state = row.querySelector('[data-field="state"]');
          state.textContent = status.state;
          state.className = "breaker-state " + status.state;
          row.querySelector('[data-field="failure_count"]').textContent = status.failure_count;
          row.querySelector('[data-field="opened_at"]').textContent =
            status.opened_at ? status.opened_at.replace("T", " ").slice(0, 19) : "—";
          row.querySelector('[data-field="shared"]').textContent = status.shared ? "yes" : "no";
        });
      })
      .catch(function () {});
  }
  setInterval(refresh, 5000);
})();
