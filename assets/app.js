// PulseGuardian: refreshes the live parts of a page (elements with `data-refresh`,
// seconds) through htmx while the tab is visible. A hidden tab asks nothing; it
// catches up as soon as it is shown again. When the session ends the server answers
// 286 with a sign-in prompt, and refreshing stops.
(function () {
  'use strict';
  var last = {};
  var stopped = false;

  function refresh(force) {
    if (stopped || document.visibilityState !== 'visible' || !window.htmx) return;
    var now = Date.now();
    document.querySelectorAll('[data-refresh]').forEach(function (el) {
      var every = (parseInt(el.getAttribute('data-refresh'), 10) || 5) * 1000;
      var key = el.id || '';
      if (!force && now - (last[key] || 0) < every - 250) return;
      if (el.classList.contains('htmx-request')) return;
      last[key] = now;
      window.htmx.trigger(el, 'refresh');
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var now = Date.now();
    document.querySelectorAll('[data-refresh]').forEach(function (el) { last[el.id || ''] = now; });
    setInterval(function () { refresh(false); }, 1000);
  });
  document.addEventListener('visibilitychange', function () { refresh(true); });
  document.addEventListener('htmx:afterRequest', function (e) {
    if (e.detail && e.detail.xhr && e.detail.xhr.status === 286) {
      stopped = true;
      document.querySelectorAll('[data-refresh]').forEach(function (el) { el.removeAttribute('data-refresh'); });
    }
  });
})();
