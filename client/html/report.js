/*
 * perch HTML report: draws the session header, the call tree, the flame
 * graph and the table of functions from the JSON in #perch-data (its shape
 * is described at the top of client/export_html.c).
 *
 * The embedded tree is the whole call tree merged by function, library
 * frames included.  What the views show is built from it on demand: a
 * "view" is one function at one place of the tree (the embedded nodes of
 * that function merged) or a group of hidden library frames.  Folding runs
 * of library frames happens here, so that any group can be unfolded and
 * folding switched off without another export.
 */
'use strict';
(function () {
  const data = JSON.parse(document.getElementById('perch-data').textContent);
  const session = data.session;
  const rate = session.rate_hz > 0 ? session.rate_hz : 99;
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function baseName(path) {
    return path ? path.slice(path.lastIndexOf('/') + 1) : '';
  }

  /* As the text reports print times: "1.23s", "456ms", "78µs". */
  function fmtTime(samples) {
    const s = samples / rate;
    if (s >= 10) return s.toFixed(1) + 's';
    if (s >= 1) return s.toFixed(2) + 's';
    if (s >= 0.001) return (s * 1e3).toFixed(0) + 'ms';
    return (s * 1e6).toFixed(0) + 'µs';
  }

  function fmtPct(part, whole) {
    return whole > 0 ? (100 * part / whole).toFixed(1) + '%' : '–';
  }

  function where(f) {
    if (f.file && f.line > 0) return baseName(f.file) + ':' + f.line;
    return f.file ? baseName(f.file) : '';
  }

  /* ---- the embedded tree ---------------------------------------------- */

  const frames = data.frames.map((a) => {
    const module = a[3] >= 0 ? data.modules[a[3]] : null;
    return {
      func: a[0], file: a[1], line: a[2], module: module, mod: baseName(module),
      lib: (a[4] & 1) !== 0, inlined: (a[4] & 2) !== 0,
      key: a[0] + '\n' + (module || ''),
    };
  });

  /* Pre-order [frame, total, self, nkids]...; iterative, as stacks run deep. */
  function readTree(a) {
    const root = { f: null, total: a[1], self: a[2], kids: [] };
    const open = [[root, a[3]]];
    for (let i = 4; open.length > 0;) {
      const top = open[open.length - 1];
      if (top[1] === 0) { open.pop(); continue; }
      top[1]--;
      const n = { f: frames[a[i]], total: a[i + 1], self: a[i + 2], kids: [] };
      top[0].kids.push(n);
      open.push([n, a[i + 3]]);
      i += 4;
    }
    return root;
  }

  const root = readTree(data.tree);
  const total = root.total;

  /* ---- views: what the tree and the flame graph show ------------------ */

  let fold = true;

  function newView(kind, parent, inRun) {
    return {
      kind: kind, parent: parent, inRun: inRun, depth: parent ? parent.depth + 1 : 0,
      nodes: [], f: null, total: 0, self: 0, kids: null,
      open: false, reveal: false, row: null, hidden: 0, modules: '',
    };
  }

  /*
   * Nodes of the same function under one parent become one view.  inRun:
   * the parent is an unfolded library frame, so library kids stay shown.
   */
  function viewsOf(nodes, parent, inRun) {
    const byKey = new Map(), out = [];
    for (const n of nodes) {
      let v = byKey.get(n.f.key);
      if (!v) {
        v = newView('fn', parent, inRun && n.f.lib);
        v.f = n.f;
        byKey.set(n.f.key, v);
        out.push(v);
      }
      v.nodes.push(n);
      v.total += n.total;
      v.self += n.self;
    }
    return out;
  }

  /* The library kids of a view as one group: its hidden frames' run. */
  function groupOf(libs, parent) {
    const g = newView('group', parent, false), funcs = new Set(), mods = new Set();
    const todo = libs.slice();
    g.nodes = libs;
    for (const n of libs) g.total += n.total;
    while (todo.length > 0) {
      const n = todo.pop();
      funcs.add(n.f.key);
      if (n.f.mod) mods.add(n.f.mod);
      g.self += n.self;
      for (const k of n.kids) if (k.f.lib) todo.push(k);
    }
    g.hidden = funcs.size;
    g.modules = Array.from(mods).join(', ');
    return g;
  }

  function kidsOf(v) {
    if (v.kids) return v.kids;
    let kids;
    if (v.kind === 'group' && v.reveal) {
      kids = viewsOf(v.nodes, v, true);
    } else if (v.kind === 'group') {
      /* What the run calls outside the library, merged by function. */
      const below = [], todo = v.nodes.slice();
      while (todo.length > 0)
        for (const k of todo.pop().kids) (k.f.lib ? todo : below).push(k);
      kids = viewsOf(below, v, false);
    } else {
      const shown = [], hidden = [];
      for (const n of v.nodes)
        for (const k of n.kids) (fold && k.f.lib && !v.inRun ? hidden : shown).push(k);
      kids = viewsOf(shown, v, v.inRun);
      if (hidden.length > 0) kids.push(groupOf(hidden, v));
    }
    kids.sort((a, b) => b.total - a.total);
    v.kids = kids;
    return kids;
  }

  function newRoot() {
    const r = newView('root', null, false);
    r.nodes = [root];
    r.total = root.total;
    r.self = root.self;
    r.open = true;
    return r;
  }

  let rootView = newRoot();

  function label(v) {
    if (v.kind === 'root') return 'all';
    if (v.kind === 'group')
      return '[' + v.hidden + ' frame' + (v.hidden === 1 ? '' : 's') + (v.reveal ? ' unfolded]' : ' hidden]');
    return v.f.func;
  }

  /* ---- the header ------------------------------------------------------ */

  function pad(n) { return String(n).padStart(2, '0'); }

  function fmtDate(ms) {
    const d = new Date(ms);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function tile(k, v, s, title) {
    const t = el('div', 'tile');
    t.append(el('div', 'k', k), el('div', 'v', v));
    if (s) t.append(el('div', 's', s));
    if (title) t.title = title;
    return t;
  }

  function renderHeader() {
    const h = $('head'), s = session;
    const name = s.name || baseName(s.exe) || 'pid ' + s.pid;
    const title = el('div', 'title');
    const good = ['complete', 'stopped', 'target-exited'], bad = ['failed', 'interrupted'];
    const badge = good.includes(s.status) ? 'good' : bad.includes(s.status) ? 'bad' : 'warn';
    title.append(el('span', 'logo', 'perch'), el('h1', null, name),
      el('span', 'badge ' + badge, s.status || '?'),
      el('span', 'loc', 'session ' + s.id + ' · pid ' + s.pid + (s.exe ? ' · ' + s.exe : '')));
    h.append(title);
    if (s.cmdline) h.append(el('div', 'cmd', s.cmdline));

    const when = fmtDate(s.started_ms);
    const due = s.ticks + s.late_ticks;
    const cpu = s.mode === 'cpu';
    const names = [];
    for (const t of data.threads) if (!names.includes(t[1])) names.push(t[1]);
    const tiles = el('div', 'tiles');
    tiles.append(
      tile('Recorded', when.slice(0, 10), when.slice(11) + ' local time'),
      tile('Duration', s.duration_s.toFixed(1) + ' s', 'wall clock'),
      tile('Samples', String(total), s.ticks + ' ticks at ' + s.rate_hz + ' Hz',
        'Thread samples shown; a tick samples every thread once.'),
      tile('Late', (due > 0 ? 100 * s.late_ticks / due : 0).toFixed(1) + ' %',
        s.late_ticks + ' ticks taken late' + (s.eintr_caused > 0 ? ', ' + s.eintr_caused + ' EINTR caused' : ''),
        'Ticks the sampler took later than planned (a busy machine).'),
      tile('Time shown', cpu ? 'CPU time' : 'Wall-clock',
        cpu ? 'running threads only' : 'every thread, running or waiting'),
      tile('Target CPU', s.target_cpu_s === null ? '–' : s.target_cpu_s.toFixed(2) + ' s',
        s.target_cpu_s === null || !(s.duration_s > 0) ? 'not measured' :
          (100 * s.target_cpu_s / s.duration_s).toFixed(0) + ' % of one CPU'),
      tile('Threads', String(data.threads.length),
        names.slice(0, 4).join(', ') + (names.length > 4 ? ', …' : ''), names.join(', ')));
    if (s.sampling === 'ptrace') {
      tiles.append(tile('Running threads', 'Stops', s.stopped_samples + ' stops, ' +
        (s.max_stops < 0 ? 'every one each tick' : 'at most ' + s.max_stops + ' a tick'),
        'Recorded with --ptrace-only: running threads were stopped to be sampled.'));
    } else if (s.sampling === 'kernel') {
      tiles.append(tile('Running threads', s.kernel_samples > 0 ? 'Kernel' : 'Stops',
        s.kernel_samples + ' kernel samples, ' + s.stopped_samples + ' stops',
        'The kernel sampled running threads without stopping them; a stop is a ' +
        "thread's first running tick, or every one where perf events are not allowed."));
    }
    h.append(tiles);
    if (s.error) h.append(el('div', 'error', 'Error: ' + s.error));
  }

  /* ---- colours --------------------------------------------------------- */

  const dark = window.matchMedia('(prefers-color-scheme: dark)');
  let scheme = 'kind';

  function hash(s) {
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
    return h >>> 0;
  }

  /*
   * Your code in warm colours, libraries in cool ones, hidden runs grey;
   * the function name varies the shade so that neighbours stand apart.
   */
  function colour(v) {
    const L = dark.matches ? -12 : 0;
    if (v.kind === 'root') return dark.matches ? 'hsl(220,8%,40%)' : 'hsl(220,8%,78%)';
    if (v.kind === 'group') return 'hsl(215,10%,' + (70 + L) + '%)';
    const h = hash(v.f.func);
    if (scheme === 'module') {
      const m = hash(v.f.mod || '?');
      return 'hsl(' + (m % 360) + ',55%,' + (66 + L + (h % 10)) + '%)';
    }
    if (v.f.lib) return 'hsl(' + (200 + h % 30) + ',45%,' + (70 + L + (h % 8)) + '%)';
    return 'hsl(' + (12 + h % 34) + ',' + (78 + h % 14) + '%,' + (62 + L + (h % 10)) + '%)';
  }

  function renderLegend() {
    const lg = $('legend');
    lg.replaceChildren();
    const item = (c, t) => {
      const s = el('span');
      const i = el('i');
      i.style.background = c;
      s.append(i, t);
      lg.append(s);
    };
    if (scheme === 'kind') {
      item('hsl(30,85%,' + (dark.matches ? 54 : 66) + '%)', 'your code');
      item('hsl(212,45%,' + (dark.matches ? 62 : 74) + '%)', 'library');
      item('hsl(215,10%,' + (dark.matches ? 58 : 70) + '%)', 'hidden library frames');
      return;
    }
    const mods = new Set();
    for (const f of frames) if (mods.size < 6) mods.add(f.mod || '?');
    for (const m of mods) item('hsl(' + (hash(m) % 360) + ',55%,' + (dark.matches ? 58 : 70) + '%)', m);
  }

  /* ---- the call tree --------------------------------------------------- */

  const treeEl = $('tree');

  function heat(share) {
    return share >= 0.5 ? 'h50' : share >= 0.2 ? 'h20' : share >= 0.05 ? 'h5' : 'h0';
  }

  function pctCell(v) {
    const share = total > 0 ? v.total / total : 0;
    const c = el('span', 'pct ' + heat(share));
    const bar = el('i');
    bar.style.width = (100 * share).toFixed(2) + '%';
    c.append(bar, el('b', null, fmtPct(v.total, total)));
    return c;
  }

  function nameCell(v, leaf) {
    const c = el('span', 'name');
    c.style.setProperty('--d', v.depth - 1);
    c.append(el('span', 'tog', leaf ? '' : v.open ? '▾' : '▸'));
    c.append(el('span', 'fn', label(v)));
    if (v.kind === 'group') {
      c.append(el('span', 'loc', v.modules));
      const b = el('button', 'unfold', v.reveal ? 'fold' : 'unfold');
      b.type = 'button';
      b.title = v.reveal ? 'Hide these library frames again' : 'Show the library frames of this group';
      c.append(b);
    } else if (v.kind === 'fn') {
      const w = where(v.f);
      if (w) {
        const loc = el('span', 'loc', w);
        loc.title = v.f.file;
        c.append(loc);
      }
      if (v.f.inlined) c.append(el('span', 'tag', 'inlined'));
      if (v.f.lib && v.f.mod) c.append(el('span', 'tag', v.f.mod));
    }
    return c;
  }

  function rowFor(v) {
    const leaf = kidsOf(v).length === 0;
    const r = el('div', 'row' + (v.kind === 'group' ? ' group' : v.f.lib ? ' lib' : ''));
    r.setAttribute('role', 'treeitem');
    r.tabIndex = -1;
    if (!leaf) r.setAttribute('aria-expanded', String(v.open));
    r.append(el('span', 'tot', fmtTime(v.total)), pctCell(v),
      el('span', 'self', v.self > 0 ? fmtTime(v.self) : ''), nameCell(v, leaf));
    r.view = v;
    v.row = r;
    return r;
  }

  /* Rows for what is shown below v: its kids, and theirs where open. */
  function rowsBelow(v) {
    const frag = document.createDocumentFragment();
    const add = (x) => {
      for (const k of kidsOf(x)) {
        frag.append(rowFor(k));
        if (k.open) add(k);
      }
    };
    add(v);
    return frag;
  }

  function setToggle(v) {
    v.row.querySelector('.tog').textContent = v.open ? '▾' : '▸';
    v.row.setAttribute('aria-expanded', String(v.open));
  }

  function expand(v) {
    if (v.open || kidsOf(v).length === 0) return;
    v.open = true;
    setToggle(v);
    v.row.after(rowsBelow(v));
  }

  /* Rows go; the views keep their open flags for the next expand. */
  function collapse(v) {
    if (!v.open) return;
    v.open = false;
    setToggle(v);
    for (let n = v.row.nextSibling; n && n.view.depth > v.depth;) {
      const next = n.nextSibling;
      n.remove();
      n = next;
    }
  }

  function renderTree() {
    if (total === 0) {
      treeEl.replaceChildren(el('div', 'empty', 'No samples match.'));
      return;
    }
    treeEl.replaceChildren(rowsBelow(rootView));
  }

  /* Opens every view with at least min of all samples, as far down as that goes. */
  function openHot(v, min) {
    for (const k of kidsOf(v)) {
      k.open = k.total >= min && kidsOf(k).length > 0;
      if (k.open) openHot(k, min);
    }
  }

  function closeAll(v) {
    for (const k of v.kids || []) {
      k.open = false;
      closeAll(k);
    }
  }

  /* A group's frames shown or hidden again: its kids change. */
  function toggleReveal(g) {
    g.reveal = !g.reveal;
    g.kids = null;
    const wasOpen = g.open;
    collapse(g);
    const old = g.row;
    old.replaceWith(rowFor(g));
    if (wasOpen || g.reveal) expand(g);
    g.row.focus();
    if (zoom && isBelow(zoom, g)) zoom = g;
    drawFlame();
  }

  function isBelow(v, a) {
    for (let x = v; x; x = x.parent) if (x === a) return true;
    return false;
  }

  treeEl.addEventListener('click', (e) => {
    const r = e.target.closest('.row');
    if (!r) return;
    if (e.target.closest('.unfold')) {
      toggleReveal(r.view);
      return;
    }
    r.focus();
    if (r.view.open) collapse(r.view);
    else expand(r.view);
  });

  /* Arrow keys walk the rows, right and left open and close. */
  treeEl.addEventListener('keydown', (e) => {
    const r = document.activeElement && document.activeElement.closest('.row');
    if (!r) return;
    const v = r.view;
    let to = null;
    switch (e.key) {
      case 'ArrowDown': to = r.nextElementSibling; break;
      case 'ArrowUp': to = r.previousElementSibling; break;
      case 'ArrowRight':
        if (!v.open && kidsOf(v).length > 0) expand(v); else to = r.nextElementSibling;
        break;
      case 'ArrowLeft':
        if (v.open) collapse(v); else if (v.parent && v.parent.row) to = v.parent.row;
        break;
      case 'Enter': case ' ':
        if (v.open) collapse(v); else expand(v);
        break;
      default: return;
    }
    e.preventDefault();
    if (to) to.focus();
  });

  $('expand-hot').addEventListener('click', () => {
    closeAll(rootView);
    openHot(rootView, 0.1 * total);
    renderTree();
  });
  $('collapse').addEventListener('click', () => {
    closeAll(rootView);
    renderTree();
  });

  /* ---- the flame graph ------------------------------------------------- */

  const canvas = $('flame'), ctx = canvas.getContext('2d'), tip = $('tip');
  const ROW = 18;
  const FONT = '12px ' + getComputedStyle(document.body).getPropertyValue('--mono');
  let zoom = null;		/* the view drawn full width, null: the root */
  let bars = [];		/* per row: {x, w, v, above} by x, CSS pixels */
  let hoverBar = null, findText = '';

  /* The bars: the zoomed view's ancestors full width, then its subtree. */
  function layout(width) {
    const rows = [], z = zoom || rootView, chain = [];
    for (let a = z; a; a = a.parent) chain.unshift(a);
    chain.forEach((a, d) => { rows[d] = [{ x: 0, w: width, v: a, above: a !== z }]; });
    const scale = width / Math.max(z.total, 1);
    const walk = (v, x, d) => {
      for (const k of kidsOf(v)) {
        const w = k.total * scale;
        if (w < 0.4) break;	/* kids are by size: the rest are thinner */
        (rows[d] = rows[d] || []).push({ x: x, w: w, v: k, above: false });
        walk(k, x, d + 1);
        x += w;
      }
    };
    walk(z, 0, chain.length);
    return rows;
  }

  function matches(v) {
    return findText !== '' && v.kind === 'fn' && v.f.func.toLowerCase().includes(findText);
  }

  function drawFlame() {
    const width = canvas.parentNode.clientWidth;
    const dpr = window.devicePixelRatio || 1;
    bars = total > 0 ? layout(width) : [];
    const height = Math.max(bars.length, 1) * ROW;
    canvas.style.height = height + 'px';
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = FONT;
    ctx.textBaseline = 'middle';
    const charW = ctx.measureText('abcdefghij').width / 10;
    const text = dark.matches ? '#101214' : '#1d2024';
    bars.forEach((row, d) => {
      for (const b of row) {
        const y = d * ROW, w = Math.max(b.w - 1, 0.5);
        ctx.globalAlpha = findText !== '' && !matches(b.v) ? 0.35 : b.above ? 0.7 : 1;
        ctx.fillStyle = matches(b.v) ? (dark.matches ? '#e879f9' : '#c026d3') : colour(b.v);
        ctx.fillRect(b.x, y, w, ROW - 1);
        const fit = Math.floor((w - 6) / charW);
        if (fit >= 3) {
          let s = label(b.v);
          if (b.v.kind === 'root') s = 'all: ' + fmtTime(b.v.total) + ' in ' + total + ' samples';
          if (s.length > fit) s = s.slice(0, fit - 1) + '…';
          ctx.fillStyle = text;
          ctx.fillText(s, b.x + 3, y + ROW / 2);
        }
        if (b === hoverBar) {
          ctx.globalAlpha = 1;
          ctx.strokeStyle = dark.matches ? '#ffffff' : '#1d2024';
          ctx.lineWidth = 1.5;
          ctx.strokeRect(b.x + 0.75, y + 0.75, w - 1.5, ROW - 2.5);
        }
      }
    });
    ctx.globalAlpha = 1;
    renderCrumbs();
  }

  function barAt(x, y) {
    const row = bars[Math.floor(y / ROW)];
    if (!row) return null;
    let lo = 0, hi = row.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1, b = row[mid];
      if (x < b.x) hi = mid - 1;
      else if (x >= b.x + b.w) lo = mid + 1;
      else return b;
    }
    return null;
  }

  function pointer(e) {
    const r = canvas.getBoundingClientRect();
    return barAt(e.clientX - r.left, e.clientY - r.top);
  }

  function showTip(b, e) {
    const v = b.v, wrap = canvas.parentNode.getBoundingClientRect();
    const z = zoom || rootView;
    tip.replaceChildren();
    tip.append(el('div', 'fn', v.kind === 'root' ? 'all samples' : label(v)));
    if (v.kind === 'fn') {
      const f = v.f;
      if (f.file) tip.append(el('div', 'loc', f.file + (f.line > 0 ? ':' + f.line : '')));
      if (f.module) tip.append(el('div', 'loc', f.module + (f.lib ? ' (library)' : '') + (f.inlined ? ', inlined' : '')));
    } else if (v.kind === 'group') {
      tip.append(el('div', 'loc', v.modules + ' (library frames)'));
    }
    let share = fmtPct(v.total, total) + ' of all';
    if (z !== rootView && !b.above) share += ', ' + fmtPct(v.total, z.total) + ' of ' + label(z);
    tip.append(el('div', 'num', 'Total ' + fmtTime(v.total) + ' (' + share + ')'));
    tip.append(el('div', 'num', 'Self ' + fmtTime(v.self) + ' (' + fmtPct(v.self, total) + ')'));
    tip.hidden = false;
    let x = e.clientX - wrap.left + 14;
    const y = e.clientY - wrap.top + 16;
    if (x + tip.offsetWidth > wrap.width) x = Math.max(0, e.clientX - wrap.left - tip.offsetWidth - 14);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }

  canvas.addEventListener('mousemove', (e) => {
    const b = pointer(e);
    if (b !== hoverBar) {
      hoverBar = b;
      drawFlame();
    }
    if (b) showTip(b, e);
    else tip.hidden = true;
  });
  canvas.addEventListener('mouseleave', () => {
    tip.hidden = true;
    hoverBar = null;
    drawFlame();
  });
  canvas.addEventListener('click', (e) => {
    const b = pointer(e);
    if (b) zoomTo(b.v);
  });

  function zoomTo(v) {
    zoom = v === rootView ? null : v;
    hoverBar = null;
    tip.hidden = true;
    drawFlame();
  }

  function renderCrumbs() {
    const c = $('crumbs');
    c.replaceChildren();
    $('reset').disabled = zoom === null;
    if (!zoom) return;
    const chain = [];
    for (let a = zoom; a; a = a.parent) chain.unshift(a);
    chain.forEach((a, i) => {
      if (i > 0) c.append(' › ');
      if (a === zoom) {
        c.append(el('b', null, label(a)));
      } else {
        const link = el('a', null, label(a));
        link.addEventListener('click', () => zoomTo(a));
        c.append(link);
      }
    });
  }

  $('reset').addEventListener('click', () => zoomTo(rootView));
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && zoom) zoomTo(zoom.parent || rootView);
  });

  /* ---- the table of functions ------------------------------------------ */

  /*
   * Self and total time per function over the whole tree.  A recursive
   * function's total counts its outermost calls only.
   */
  function functionRows() {
    const byKey = new Map(), onPath = new Map();
    const todo = root.kids.map((n) => [n, true]);
    while (todo.length > 0) {
      const [n, entering] = todo.pop();
      const k = n.f.key;
      if (!entering) {
        onPath.set(k, onPath.get(k) - 1);
        continue;
      }
      let r = byKey.get(k);
      if (!r) {
        r = { f: n.f, self: 0, total: 0 };
        byKey.set(k, r);
      }
      r.self += n.self;
      if (!onPath.get(k)) r.total += n.total;
      onPath.set(k, (onPath.get(k) || 0) + 1);
      todo.push([n, false]);
      for (const kid of n.kids) todo.push([kid, true]);
    }
    return Array.from(byKey.values());
  }

  const fnRows = functionRows();
  const LIMIT = 200;
  let sortKey = 'self', sortAsc = false, showAll = false;

  function sortValue(r, key) {
    switch (key) {
      case 'func': return r.f.func.toLowerCase();
      case 'where': return where(r.f);
      case 'module': return r.f.mod;
      default: return r[key];
    }
  }

  function renderFlat() {
    const tbody = $('flat').tBodies[0];
    const rows = fnRows.filter((r) => findText === '' || r.f.func.toLowerCase().includes(findText));
    rows.sort((a, b) => {
      const x = sortValue(a, sortKey), y = sortValue(b, sortKey);
      const c = x < y ? -1 : x > y ? 1 : b.self - a.self;
      return sortAsc ? c : -c;
    });
    const frag = document.createDocumentFragment();
    for (const r of showAll ? rows : rows.slice(0, LIMIT)) {
      const tr = el('tr', r.f.lib ? 'lib' : null);
      const w = el('td', 'where', where(r.f));
      w.title = r.f.file || '';
      const m = el('td', 'module', r.f.mod);
      m.title = r.f.module || '';
      tr.append(el('td', 'num', r.self > 0 ? fmtTime(r.self) : ''),
        el('td', 'num', r.self > 0 ? fmtPct(r.self, total) : ''),
        el('td', 'num', fmtTime(r.total)), el('td', 'num', fmtPct(r.total, total)),
        el('td', 'fnc', r.f.func), w, m);
      tr.func = r.f.func;
      frag.append(tr);
    }
    tbody.replaceChildren(frag);
    let marked = false;
    for (const th of $('flat').tHead.rows[0].cells) {
      const on = !marked && th.dataset.sort === sortKey;
      th.classList.toggle('sorted', on);
      th.classList.toggle('asc', on && sortAsc);
      marked = marked || on;
    }
    const more = $('flat-more');
    more.hidden = showAll || rows.length <= LIMIT;
    more.textContent = 'Show all ' + rows.length + ' functions';
  }

  $('flat').tHead.addEventListener('click', (e) => {
    const th = e.target.closest('th');
    if (!th) return;
    const key = th.dataset.sort;
    /* Names read best A to Z first, amounts largest first. */
    sortAsc = key === sortKey ? !sortAsc : key === 'func' || key === 'where' || key === 'module';
    sortKey = key;
    renderFlat();
  });
  $('flat').tBodies[0].addEventListener('click', (e) => {
    const tr = e.target.closest('tr');
    if (!tr) return;
    $('find').value = tr.func;
    find(tr.func);
    $('flame-section').scrollIntoView({ behavior: 'smooth' });
  });
  $('flat-more').addEventListener('click', () => {
    showAll = true;
    renderFlat();
  });

  /* ---- tools ------------------------------------------------------------ */

  /* The share of all samples spent in functions whose name contains text. */
  function foundShare() {
    let sum = 0;
    const todo = root.kids.slice();
    while (todo.length > 0) {
      const n = todo.pop();
      if (n.f.func.toLowerCase().includes(findText)) sum += n.total;
      else for (const k of n.kids) todo.push(k);
    }
    return sum;
  }

  function find(text) {
    findText = text.trim().toLowerCase();
    $('found').textContent = findText === '' ? '' : 'matches ' + fmtPct(foundShare(), total) + ' of all samples';
    drawFlame();
    renderFlat();
  }

  $('find').addEventListener('input', (e) => find(e.target.value));
  $('fold').addEventListener('change', (e) => {
    fold = e.target.checked;
    rootView = newRoot();
    zoom = null;
    openHot(rootView, 0.1 * total);
    renderTree();
    drawFlame();
  });
  $('scheme').addEventListener('change', (e) => {
    scheme = e.target.value;
    renderLegend();
    drawFlame();
  });
  dark.addEventListener('change', () => {
    renderLegend();
    drawFlame();
  });
  window.addEventListener('resize', () => drawFlame());

  /* ---- self test --------------------------------------------------------- */

  /*
   * With #selftest in the address the page drives itself as a reader would
   * (tests/test_html.c loads it in headless Chromium) and writes what it
   * saw into #selftest: expanding rows from a collapsed tree along the
   * hottest path, unfolding a group of library frames, zooming the flame
   * graph with a click, sorting the table.
   */
  function selftest() {
    const log = [];
    let ok = true;
    const check = (cond, what) => {
      log.push((cond ? 'ok   ' : 'FAIL ') + what);
      ok = ok && cond;
    };
    const shown = (v) => v.row !== null && v.row.isConnected;
    const click = (node, x, y) => node.dispatchEvent(new MouseEvent('click', { bubbles: true, clientX: x, clientY: y }));

    const rows = () => treeEl.getElementsByClassName('row').length;
    $('collapse').click();
    check(rows() === kidsOf(rootView).length, 'collapsed: ' + rows() + ' top-level rows');
    const path = [];
    let group = null;
    for (let v = kidsOf(rootView)[0]; v; v = kidsOf(v)[0]) {
      path.push(label(v));
      if (!group && v.kind === 'group') group = v;
      if (kidsOf(v).length === 0) break;
      const before = rows();
      check(!kidsOf(v).some(shown), 'children of ' + label(v) + ' not in the page before expanding');
      click(v.row.querySelector('.fn'));
      check(kidsOf(v).every(shown) && rows() === before + kidsOf(v).length,
        'expanding ' + label(v) + ' shows its ' + kidsOf(v).length + ' children');
    }
    log.push('hot path: ' + path.join(' → '));
    if (group) {
      const hiddenFuncs = new Set();
      const todo = group.nodes.slice();
      while (todo.length > 0) {
        const n = todo.pop();
        hiddenFuncs.add(n.f.func);
        for (const k of n.kids) if (k.f.lib) todo.push(k);
      }
      const names = () => Array.from(treeEl.querySelectorAll('.fn'), (e) => e.textContent);
      check(Array.from(hiddenFuncs).every((f) => !names().includes(f)), 'library frames hidden in ' + label(group));
      click(group.row.querySelector('.unfold'));
      /* Every frame of the run, and the hottest path on below it. */
      const openRun = (v) => {
        kidsOf(v).forEach((k, i) => {
          if (i === 0 || (k.kind === 'fn' && k.f.lib)) {
            expand(k);
            openRun(k);
          }
        });
      };
      openRun(group);
      check(Array.from(hiddenFuncs).every((f) => names().includes(f)),
        'unfolding shows the hidden frames: ' + Array.from(hiddenFuncs).join(', '));
    }
    if (bars.length > 1) {
      const b = bars[1][0], r = canvas.getBoundingClientRect();
      canvas.dispatchEvent(new MouseEvent('mousemove', { clientX: r.left + b.x + b.w / 2, clientY: r.top + ROW * 1.5 }));
      check(!tip.hidden && tip.textContent.includes(label(b.v)) && tip.textContent.includes(fmtPct(b.v.total, total)),
        'hovering ' + label(b.v) + ' in the flame graph shows its time and share');
      canvas.dispatchEvent(new MouseEvent('mouseleave'));
    }
    const leaf = bars.length > 0 ? bars[bars.length - 1][0] : null;
    if (leaf) {
      const r = canvas.getBoundingClientRect();
      const row = bars.length - 1;
      click(canvas, r.left + leaf.x + leaf.w / 2, r.top + row * ROW + ROW / 2);
      check(zoom === leaf.v, 'clicking ' + label(leaf.v) + ' in the flame graph zooms to it');
      click(canvas, r.left + 4, r.top + ROW / 2);
      check(zoom === null, 'clicking the root zooms out');
    }
    const th = $('flat').tHead.rows[0].cells;
    click(th[4]);
    const fnames = Array.from($('flat').tBodies[0].rows, (tr) => tr.func);
    check(fnames.every((f, i) => i === 0 || fnames[i - 1].toLowerCase() <= f.toLowerCase()),
      'table sorted by function name');
    click(th[0]);
    if (fnRows.length > 0) {
      const firstSelf = fnRows.reduce((a, b) => (b.self > a.self ? b : a));
      check($('flat').tBodies[0].rows[0].func === firstSelf.f.func,
        'table sorted by self time: ' + firstSelf.f.func + ' first');
    } else {
      check(total === 0 && treeEl.textContent === 'No samples match.', 'no samples: said so');
    }
    return { ok: ok, log: log };
  }

  function runSelftest() {
    const out = $('selftest');
    let r;
    try {
      r = selftest();
    } catch (e) {
      r = { ok: false, log: ['FAIL ' + e + '\n' + e.stack] };
    }
    out.hidden = false;
    out.dataset.result = r.ok ? 'pass' : 'fail';
    out.textContent = r.log.join('\n');
  }

  renderHeader();
  renderLegend();
  openHot(rootView, 0.1 * total);
  renderTree();
  drawFlame();
  renderFlat();
  if (location.hash === '#selftest') runSelftest();
})();
