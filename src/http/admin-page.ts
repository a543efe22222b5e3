/**
 * The admin console: one self-contained page (no build step, no external assets). It logs in with
 * an API key holding the `admin` scope (kept in sessionStorage), polls `/api/stats` for the node
 * list and charts, publishes through `/api/push`, watches a channel through `/api/admin/watch`
 * (server-sent events read with fetch, so the key travels in a header), and disconnects a user or
 * unsubscribes one from a channel through the control API (`admin` includes `control`).
 */
export const adminPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pushcast admin</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f4f6fa; }
  body { margin: 0; }
  header { background: #1d2330; color: #fff; padding: 12px 20px; display: flex; gap: 16px; align-items: center; }
  header h1 { font-size: 18px; margin: 0; }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
  section { background: #fff; border-radius: 8px; padding: 14px 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
  section h2 { font-size: 15px; margin: 0 0 10px; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #e6e9ef; }
  input, textarea, button { font: inherit; padding: 6px 8px; border: 1px solid #c8cdd8; border-radius: 6px; }
  textarea { width: 100%; box-sizing: border-box; min-height: 60px; font-family: ui-monospace, monospace; }
  button { background: #2f6fed; color: #fff; border-color: #2f6fed; cursor: pointer; }
  .row { display: flex; gap: 8px; margin-bottom: 8px; }
  .row input { flex: 1; }
  .error { color: #b3261e; }
  .ok { color: #1e7b34; }
  canvas { width: 100%; height: 160px; }
  #watch-log { list-style: none; margin: 0; padding: 0; max-height: 260px; overflow: auto; font-family: ui-monospace, monospace; font-size: 12px; }
  #watch-log li { padding: 3px 0; border-bottom: 1px dashed #e6e9ef; }
  .legend span { display: inline-block; margin-right: 12px; font-size: 12px; }
  #login { max-width: 420px; margin: 80px auto; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<header><h1>pushcast admin</h1><span id="summary"></span><span style="flex:1"></span><button id="logout" hidden>Log out</button></header>
<section id="login">
  <h2>Log in</h2>
  <p>An API key with the <code>admin</code> scope.</p>
  <div class="row"><input id="login-key" type="password" placeholder="API key" autocomplete="off"><button id="login-button">Log in</button></div>
  <p id="login-error" class="error"></p>
</section>
<main id="console" hidden>
  <section>
    <h2>Nodes</h2>
    <table id="nodes"><thead><tr><th>node</th><th>version</th><th>state</th><th>uptime</th><th>sockets</th><th>channels</th><th>req/s</th><th>del/s</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Sockets</h2>
    <canvas id="chart-sockets" width="800" height="160"></canvas>
  </section>
  <section>
    <h2>Pushes per second: requested vs delivered, per node</h2>
    <canvas id="chart-rates" width="800" height="160"></canvas>
    <div id="rates-legend" class="legend"></div>
  </section>
  <section>
    <h2>Publish</h2>
    <div class="row"><input id="publish-channel" placeholder="channel" value="admin:test"><input id="publish-event" placeholder="event" value="hello"></div>
    <textarea id="publish-data">{"text": "hi from the console"}</textarea>
    <div class="row" style="margin-top:8px"><button id="publish-button">Publish</button><span id="publish-result"></span></div>
  </section>
  <section>
    <h2>Control a user</h2>
    <div class="row"><input id="disconnect-user" placeholder="user id" autocomplete="off"><button id="disconnect-button">Disconnect</button></div>
    <p id="disconnect-result"></p>
    <div class="row"><input id="unsubscribe-channel" placeholder="channel" autocomplete="off"><input id="unsubscribe-user" placeholder="user id" autocomplete="off"><button id="unsubscribe-button">Unsubscribe</button></div>
    <p id="unsubscribe-result"></p>
  </section>
  <section>
    <h2>Watch a channel</h2>
    <div class="row"><input id="watch-channel" placeholder="channel" value="admin:test"><button id="watch-button">Watch</button></div>
    <p id="watch-status"></p>
    <ul id="watch-log"></ul>
  </section>
</main>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  let key = sessionStorage.getItem('pushcast-admin-key') || '';
  const history = { t: [], sockets: [], rates: {} };
  const colors = ['#2f6fed', '#e8710a', '#1e7b34', '#b3261e', '#7b3fe4', '#00838f'];
  let poller, watchAbort;

  const api = (path, init = {}) =>
    fetch(path, { ...init, headers: { authorization: 'Bearer ' + key, 'content-type': 'application/json', ...(init.headers || {}) } });

  async function login(candidate) {
    key = candidate;
    const res = await api('/api/stats').catch(() => null);
    if (!res || !res.ok) {
      $('login-error').textContent = res && res.status === 401 ? 'That key is not valid.' : res && res.status === 403 ? 'That key has no admin scope.' : 'The server did not answer.';
      return false;
    }
    const session = await api('/api/admin/session').catch(() => null);
    if (!session || !session.ok) { $('login-error').textContent = 'That key has no admin scope.'; return false; }
    sessionStorage.setItem('pushcast-admin-key', key);
    $('login').hidden = true; $('console').hidden = false; $('logout').hidden = false;
    render(await res.json());
    poller = setInterval(poll, 1000);
    return true;
  }

  async function poll() {
    const res = await api('/api/stats').catch(() => null);
    if (res && res.ok) render(await res.json());
  }

  function fmtUptime(s) { return s < 120 ? s + ' s' : s < 7200 ? Math.round(s / 60) + ' min' : Math.round(s / 3600) + ' h'; }
  function cell(text) { const td = document.createElement('td'); td.textContent = String(text); return td; }

  function render(stats) {
    const body = $('nodes').tBodies[0];
    body.replaceChildren(...stats.nodes.map((n) => {
      const tr = document.createElement('tr');
      tr.dataset.node = n.id;
      tr.append(cell(n.id), cell(n.version), cell(n.state), cell(fmtUptime(n.uptimeS)), cell(n.sockets), cell(n.channels),
        cell(n.rates.requested10s.toFixed(1)), cell(n.rates.delivered10s.toFixed(1)));
      return tr;
    }));
    $('summary').textContent = stats.totals.nodes + ' node(s), ' + stats.totals.sockets + ' socket(s)';
    history.t.push(Date.now());
    history.sockets.push(stats.totals.sockets);
    for (const n of stats.nodes) {
      const r = (history.rates[n.id] ||= { req: [], del: [] });
      r.req.push(n.rates.requested10s); r.del.push(n.rates.delivered10s);
    }
    if (history.t.length > 60) { history.t.shift(); history.sockets.shift(); for (const r of Object.values(history.rates)) { r.req.shift(); r.del.shift(); } }
    draw($('chart-sockets'), [{ values: history.sockets, color: colors[0] }]);
    const series = [];
    const legend = [];
    Object.entries(history.rates).forEach(([id, r], i) => {
      const c = colors[i % colors.length];
      series.push({ values: r.req, color: c }, { values: r.del, color: c, dashed: true });
      legend.push('<span style="color:' + c + '">&#9632; ' + id.replace(/[<&>]/g, '') + ' (solid: requested, dashed: delivered)</span>');
    });
    draw($('chart-rates'), series);
    $('rates-legend').innerHTML = legend.join('');
  }

  function draw(canvas, series) {
    const ctx = canvas.getContext('2d');
    const w = canvas.width, h = canvas.height, pad = 24;
    ctx.clearRect(0, 0, w, h);
    const max = Math.max(1, ...series.flatMap((s) => s.values));
    ctx.strokeStyle = '#e6e9ef'; ctx.fillStyle = '#6b7385'; ctx.font = '11px sans-serif';
    for (let i = 0; i <= 4; i++) {
      const y = pad + ((h - 2 * pad) * i) / 4;
      ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 4, y); ctx.stroke();
      ctx.fillText(String(Math.round((max * (4 - i)) / 4 * 10) / 10), 2, y - 2);
    }
    for (const s of series) {
      ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.setLineDash(s.dashed ? [6, 4] : []);
      ctx.beginPath();
      s.values.forEach((v, i) => {
        const x = pad + ((w - pad - 4) * i) / 59;
        const y = h - pad - ((h - 2 * pad) * v) / max;
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    }
    ctx.setLineDash([]);
  }

  async function publish() {
    const out = $('publish-result');
    let data;
    try { data = JSON.parse($('publish-data').value || 'null'); } catch { out.className = 'error'; out.textContent = 'data is not valid JSON'; return; }
    const res = await api('/api/push', { method: 'POST', body: JSON.stringify({ channel: $('publish-channel').value, event: $('publish-event').value, data }) });
    const body = await res.json().catch(() => ({}));
    out.className = res.ok ? 'ok' : 'error';
    out.textContent = res.ok ? 'pushed ' + body.id : res.status + ' ' + (body.code || '') + ': ' + (body.error || '');
  }

  // The control API, cluster-wide; the answer says how many connections it reached.
  async function control(path, body, out, describe) {
    const res = await api(path, { method: 'POST', body: JSON.stringify(body) }).catch(() => null);
    const answer = res ? await res.json().catch(() => ({})) : {};
    out.className = res && res.ok ? 'ok' : 'error';
    out.textContent = !res ? 'The server did not answer.' : res.ok ? describe(answer) : res.status + ' ' + (answer.code || '') + ': ' + (answer.error || '');
  }

  function disconnectUser() {
    const userId = $('disconnect-user').value;
    return control('/api/users/' + encodeURIComponent(userId) + '/disconnect', {}, $('disconnect-result'),
      (a) => 'disconnected ' + a.disconnected + ' connection(s) of ' + userId);
  }

  function unsubscribeUser() {
    const channel = $('unsubscribe-channel').value, userId = $('unsubscribe-user').value;
    return control('/api/channels/' + encodeURIComponent(channel) + '/unsubscribe', { userId }, $('unsubscribe-result'),
      (a) => 'unsubscribed ' + a.unsubscribed + ' connection(s) of ' + userId + ' from ' + channel);
  }

  async function watch() {
    if (watchAbort) watchAbort.abort();
    watchAbort = new AbortController();
    const channel = $('watch-channel').value;
    $('watch-log').replaceChildren();
    const res = await api('/api/admin/watch?channel=' + encodeURIComponent(channel), { signal: watchAbort.signal }).catch(() => null);
    if (!res || !res.ok) { $('watch-status').textContent = 'cannot watch: ' + (res ? res.status : 'no answer'); return; }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ done: true }));
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\\n\\n')) >= 0) {
        const frame = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        const event = (frame.match(/^event: (.*)$/m) || [])[1] || 'message';
        const data = (frame.match(/^data: (.*)$/m) || [])[1];
        if (event === 'ready') { $('watch-status').textContent = 'watching ' + channel; $('watch-status').dataset.ready = channel; continue; }
        if (!data) continue;
        const m = JSON.parse(data);
        const li = document.createElement('li');
        li.textContent = new Date(m.ts).toLocaleTimeString() + '  ' + m.event + '  ' + JSON.stringify(m.data) + (m.offset ? '  @' + m.offset : '');
        $('watch-log').prepend(li);
      }
    }
  }

  $('login-button').onclick = () => login($('login-key').value.trim());
  $('login-key').onkeydown = (e) => { if (e.key === 'Enter') login($('login-key').value.trim()); };
  $('logout').onclick = () => { sessionStorage.removeItem('pushcast-admin-key'); location.reload(); };
  $('publish-button').onclick = publish;
  $('watch-button').onclick = watch;
  $('disconnect-button').onclick = disconnectUser;
  $('unsubscribe-button').onclick = unsubscribeUser;
  if (key) login(key);
})();
</script>
</body>
</html>
`;
