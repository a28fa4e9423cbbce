// The status page: read-only. Everything comes from this daemon: mezz_status
// and the block feed (mezz_subscribe with levels) over one WebSocket on "/",
// and the latency histogram from /metrics. No external assets.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const RECENT = 12;
  let ws = null, nextId = 1, pending = new Map(), prev = null, statusTimer = null;
  let sealedTip = 0;
  const namespaces = new Map();
  const blocks = [];

  function setText(id, v) { const e = $(id); if (e) e.textContent = v; }
  // The height also counts its live changes (data-updates), so a reader of
  // the page (or a test) can tell a page that follows from one that loaded once.
  function setHeight(h) {
    const e = $('height');
    if (e.textContent === String(h)) return;
    e.textContent = h;
    e.dataset.updates = String(Number(e.dataset.updates || 0) + 1);
  }
  function setClass(id, cls) { const e = $(id); if (e) e.className = cls; }
  function fmtMs(s) { return s === null ? '-' : (s * 1000).toFixed(2) + ' ms'; }
  function short(h) { return h ? h.slice(0, 18) + '…' : '-'; }

  function call(method, params) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) { reject(new Error('not connected')); return; }
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  function showStatus(st) {
    const now = performance.now();
    setText('version', 'v' + st.version + '  ' + st.publicKey.slice(0, 14) + '…');
    if (st.height >= sealedTip) { setHeight(st.height); setText('slot', st.slot); }
    setText('txs', st.transactions);
    setText('subscribers', st.subscribers);
    setText('ingress', st.ingressQueue);
    if (prev && now > prev.t) {
      const tps = (st.transactions - prev.transactions) * 1000 / (now - prev.t);
      setText('tps', tps.toFixed(tps < 10 ? 1 : 0));
    }
    prev = { t: now, transactions: st.transactions };
    setText('avail', st.availableHeight);
    setText('dalag', Math.max(0, st.height - st.availableHeight) + ' blocks');
    setText('dahalted', st.daHalted ? 'HALTED (shard write failed)' : 'running');
    setClass('dahalted', st.daHalted ? 'bad' : 'ok');
    setText('nscount', '(' + st.namespaces + ' registered)');
    showL1(st.l1);
    if (st.height > sealedTip) sealedTip = st.height;
  }

  // mezz_status.l1 is {"enabled": false} when L1 posting is not configured.
  function showL1(l1) {
    const t = $('l1');
    t.textContent = '';
    if (!l1 || typeof l1 !== 'object' || l1.enabled === false) {
      row(t, ['state', 'n/a (L1 not configured)'], true);
      return;
    }
    for (const [k, v] of Object.entries(l1)) {
      if (v !== null && typeof v === 'object') continue;
      row(t, [k, String(v)], true);
    }
  }

  function row(table, cells, header) {
    const tr = document.createElement('tr');
    cells.forEach((c, i) => {
      const td = document.createElement(header && i === 0 ? 'th' : 'td');
      td.textContent = c;
      if (typeof c === 'string' && c.startsWith('0x') && c.length > 20) td.className = 'hash';
      tr.appendChild(td);
    });
    (table.tBodies[0] || table).appendChild(tr);
    return tr;
  }

  function onBlock(r) {
    if (r.level === 'sealed') {
      let txs = 0;
      for (const ns of r.namespaces || []) {
        txs += ns.txs.length;
        const e = namespaces.get(ns.name) || { chainId: ns.chainId, txs: 0, height: 0 };
        e.txs += ns.txs.length;
        e.height = r.height;
        namespaces.set(ns.name, e);
      }
      blocks.unshift({ height: r.height, txs: r.header ? r.header.txCount : txs, level: 'sealed', hash: r.hash });
      blocks.length = Math.min(blocks.length, RECENT);
      if (r.height > sealedTip) { sealedTip = r.height; setHeight(r.height); setText('slot', r.slot); }
      drawNamespaces();
    } else {
      for (const b of blocks) if (b.height === r.height) b.level = r.level;
      if (r.level === 'available') {
        setText('avail', r.height);
        setText('dalag', Math.max(0, sealedTip - r.height) + ' blocks');
        setText('daroot', r.daRoot || '-');
      }
    }
    drawBlocks();
  }

  function drawNamespaces() {
    const tb = $('namespaces').tBodies[0];
    tb.textContent = '';
    if (!namespaces.size) row($('namespaces'), ['no traffic in the blocks seen so far', '', '', '']);
    [...namespaces.entries()].sort((a, b) => a[0].localeCompare(b[0])).forEach(([name, e]) => {
      const tr = row($('namespaces'), [name, String(e.chainId), String(e.txs), String(e.height)]);
      tr.className = 'ns';
      tr.dataset.name = name;
    });
  }

  function drawBlocks() {
    const tb = $('blocks').tBodies[0];
    tb.textContent = '';
    for (const b of blocks) row($('blocks'), [String(b.height), String(b.txs), b.level, short(b.hash)]);
  }

  // Prometheus text: cumulative buckets of mezz_preconfirmation_seconds.
  function parseHist(text) {
    const out = [];
    const re = /^mezz_preconfirmation_seconds_bucket\{le="([^"]+)"\} (\d+(?:\.\d+)?)$/gm;
    let m;
    while ((m = re.exec(text))) out.push({ le: m[1] === '+Inf' ? Infinity : parseFloat(m[1]), cum: parseFloat(m[2]) });
    return out;
  }

  function quantile(b, q) {
    if (!b.length || b[b.length - 1].cum <= 0) return null;
    const rank = q * b[b.length - 1].cum;
    let lo = 0, below = 0;
    for (const x of b) {
      if (x.cum >= rank) {
        if (!isFinite(x.le)) return lo;
        return x.cum === below ? x.le : lo + (x.le - lo) * (rank - below) / (x.cum - below);
      }
      lo = x.le; below = x.cum;
    }
    return lo;
  }

  let lastHist = null;
  async function refreshMetrics() {
    try {
      const r = await fetch('/metrics', { cache: 'no-store' });
      const b = parseHist(await r.text());
      // Show the last interval when there was traffic, else everything since start.
      let d = b, note = 'since start';
      if (lastHist && lastHist.length === b.length && b.length && b[b.length - 1].cum > lastHist[b.length - 1].cum) {
        d = b.map((x, i) => ({ le: x.le, cum: x.cum - lastHist[i].cum }));
        note = 'last 2 s';
      }
      lastHist = b;
      setText('p50', fmtMs(quantile(d, 0.5)));
      setText('p99', fmtMs(quantile(d, 0.99)));
      drawHist(d, note);
    } catch (e) { setText('histnote', 'metrics unavailable'); }
    try {
      const h = await fetch('/healthz', { cache: 'no-store' });
      setText('health', h.ok ? 'healthy' : 'UNHEALTHY: ' + (await h.text()).replace(/^unhealthy: /, ''));
      setClass('health', h.ok ? 'ok' : 'bad');
    } catch (e) { /* shown by the connection state */ }
  }

  function drawHist(b, note) {
    const box = $('hist');
    box.textContent = '';
    let below = 0, max = 0;
    const counts = b.map((x) => { const c = x.cum - below; below = x.cum; if (c > max) max = c; return c; });
    counts.forEach((c, i) => {
      const col = document.createElement('div');
      col.className = 'col';
      col.title = c + ' receipts ≤ ' + (isFinite(b[i].le) ? (b[i].le * 1000) + ' ms' : '∞');
      const bar = document.createElement('div');
      bar.className = 'bar';
      bar.style.height = (max ? (100 * c / max) : 0) + '%';
      const le = document.createElement('div');
      le.className = 'le';
      le.textContent = isFinite(b[i].le) ? (b[i].le * 1000 >= 1 ? (b[i].le * 1000) + 'ms' : (b[i].le * 1e6) + 'µs') : '+∞';
      col.appendChild(bar);
      col.appendChild(le);
      box.appendChild(col);
    });
    setText('histnote', note + ', ' + (b.length ? b[b.length - 1].cum : 0) + ' receipts');
  }

  async function pollStatus() {
    try { showStatus(await call('mezz_status')); } catch (e) { /* reconnect handles it */ }
  }

  function connect() {
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
    ws = new WebSocket(url);
    ws.onopen = async () => {
      // The subscription below replays recent blocks: start the tables afresh.
      namespaces.clear();
      blocks.length = 0;
      setText('conn', 'live');
      setClass('conn', 'ok');
      try {
        const st = await call('mezz_status');
        showStatus(st);
        drawNamespaces();
        // A few recent blocks first, so the namespaces table is not empty.
        const from = Math.max(1, st.height - RECENT + 1);
        await call('mezz_subscribe', ['blocks', { fromHeight: from, levels: ['sealed', 'available', 'posted', 'finalized'] }]);
      } catch (e) { setText('conn', 'error: ' + e.message); }
      statusTimer = setInterval(pollStatus, 1000);
    };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.method === 'mezz_subscription') { onBlock(m.params.result); return; }
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.error) p.reject(new Error(m.error.message)); else p.resolve(m.result);
    };
    ws.onclose = (ev) => {
      clearInterval(statusTimer);
      for (const p of pending.values()) p.reject(new Error('closed'));
      pending.clear();
      setText('conn', 'disconnected' + (ev.reason ? ': ' + ev.reason : '') + '; retrying');
      setClass('conn', 'bad');
      setTimeout(connect, 2000);
    };
  }

  connect();
  refreshMetrics();
  setInterval(refreshMetrics, 2000);
})();
