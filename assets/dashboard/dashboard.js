/*
 * queuehub's live dashboard.
 *
 * It joins the read-only socket.io namespace /dashboard with the official socket.io browser
 * client (vendor/socket.io.min.js: long-polling, upgraded to a WebSocket when it can) and shows:
 *   - every queue: messages waiting for a first subscriber, published/acked counters (and,
 *     when not 0, scheduled/expired/refused), and each subscribed client with an
 *     online/offline badge and its pending (unacked) count;
 *   - a live activity feed: publishes, acks, subscribes, connects and disconnects, delayed
 *     messages coming due, expiries and refused publishes;
 *   - a form that publishes a test message over HTTP (POST /v1/queues/{queue}/messages).
 *
 * In secured mode (queuehub started with --api-key) the namespace and the publish route need
 * an API key. The page takes it from its address (/dashboard#key=KEY) or asks for it when the
 * server refuses the connection, and keeps it for this browser tab only.
 *
 * The server sends a full `snapshot` on connect, then, at most every 250 ms while anything
 * changes, a `snapshot:delta` with only the queues that changed (each in full, so a queue's
 * numbers always come from the latest message about it), the names of queues that are gone,
 * and the totals. The page merges each delta into what it shows, so its work per update
 * does not grow with the number of idle queues. `activity` events only feed the activity
 * list.
 *
 * Each card also has a small live chart of the queue's publish and ack rates over the last 5
 * minutes, computed here from the counters in successive updates (see "rate charts").
 *
 * Stable hooks for tests: [data-queue="<name>"] on each queue card, with .waiting, .published,
 * .acked numbers inside, and [data-client="<id>"] rows (data-connected="true|false") with a
 * .pending number; every number has its value in data-value. The card's chart is
 * svg.rate-chart (data-published, data-acked: the counts in its 5-minute window) with
 * polyline.line-published and polyline.line-acked. Feed rows are #feed > li[data-kind] (with
 * data-queue, data-client, data-id where they apply). #conn has data-state
 * (connecting|live|offline|locked) and, while live, data-transport (polling|websocket).
 */
(function () {
  'use strict';

  const FEED_LIMIT = 50; // rows kept in the activity feed
  const numberFormat = new Intl.NumberFormat('en-US');
  const compactFormat = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

  const $ = (id) => document.getElementById(id);
  const queuesBox = $('queues');
  const feed = $('feed');

  // ---- small DOM helpers (textContent only: names are user input, never HTML) ------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Sets a big number; when it changed (not on first render) the number flashes, so a class
  // sees where a message just went.
  function setNumber(node, value) {
    const text = String(value);
    if (node.dataset.value === text) return;
    const first = node.dataset.value === undefined;
    node.dataset.value = text;
    // Up to 99,999 exactly; above that "123.4K" (the exact value is in the tooltip).
    const shown = value >= 100000 ? compactFormat.format(value) : numberFormat.format(value);
    node.textContent = shown;
    node.title = value >= 100000 ? numberFormat.format(value) : '';
    node.dataset.len = String(Math.min(shown.length, 6)); // long numbers get a smaller font
    if (!first) flash(node);
  }

  function flash(node) {
    node.classList.remove('bump');
    void node.offsetWidth; // restart the CSS animation
    node.classList.add('bump');
  }

  function clock(at) {
    const date = at ? new Date(at) : new Date();
    if (Number.isNaN(date.getTime())) return '';
    return date.toLocaleTimeString('en-GB', { hour12: false });
  }

  function plural(n, one, many) {
    return numberFormat.format(n) + ' ' + (n === 1 ? one : many || one + 's');
  }

  // ---- the connection indicator -----------------------------------------------------------

  // state: live, connecting, offline or locked; transport: "websocket" or "polling" while live.
  function showConnection(state, text, transport) {
    const conn = $('conn');
    conn.dataset.state = state;
    if (transport) conn.dataset.transport = transport;
    else delete conn.dataset.transport;
    $('conn-text').textContent = text;
    document.body.classList.toggle('offline', state !== 'live');
  }

  // ---- the API key (secured mode) ---------------------------------------------------------

  // sessionStorage, not localStorage: the key is forgotten when the tab closes, so a shared
  // classroom computer does not keep it for the next person.
  const KEY_STORE = 'queuehub.apiKey';
  let apiKey = takeKeyFromAddress() || sessionStorage.getItem(KEY_STORE);

  // "/dashboard#key=KEY" opens the dashboard unlocked; the key is then removed from the address
  // bar so that it is not left on a projected screen or in a shared link.
  function takeKeyFromAddress() {
    const match = /^#key=(.+)$/.exec(location.hash);
    if (!match) return null;
    const key = decodeURIComponent(match[1]);
    sessionStorage.setItem(KEY_STORE, key);
    history.replaceState(null, '', location.pathname + location.search);
    return key;
  }

  // The server refused us for want of a (valid) key: stop retrying and ask for one.
  function askForKey(reason) {
    showConnection('locked', 'API key needed');
    $('key-form').hidden = false;
    $('key-error').textContent = apiKey ? reason : '';
    $('key-input').focus();
  }

  function useKey(event) {
    event.preventDefault();
    const key = $('key-input').value.trim();
    if (!key) return;
    apiKey = key;
    sessionStorage.setItem(KEY_STORE, key);
    $('key-input').value = '';
    $('key-form').hidden = true;
    showConnection('connecting', 'connecting…');
    socket.connect();
  }

  // ---- rate charts -----------------------------------------------------------------------

  // Each card has a small chart of its queue's publish and ack rates over the last 5 minutes:
  // a projector audience reads a line faster than numbers. The server sends lifetime counters
  // (published, acked) in every snapshot and delta; the page turns the increase between two
  // updates into a count in 5-second buckets and draws one point per bucket, as a rate per
  // minute. A full snapshot (at every connect) only sets where each queue's counting starts:
  // what came before, or while the page was offline, is not on the chart. A queue that appears
  // in a delta starts from 0, so the publish that created it counts. The current bucket fills
  // up as updates come in.
  const BUCKET_MS = 5000;
  const BUCKETS = 60; // 5 minutes
  const PER_MINUTE = 60000 / BUCKET_MS; // a bucket's count times this is a rate per minute
  const CHART_W = 300;
  const CHART_H = 60;
  const SVG = 'http://www.w3.org/2000/svg';
  const rates = new Map(); // queue name -> { last: {published, acked}, buckets: [{at, published, acked}] }

  function svg(tag, className) {
    const node = document.createElementNS(SVG, tag);
    if (className) node.setAttribute('class', className);
    return node;
  }

  function makeChart() {
    const box = el('figure', 'rates');
    const chart = svg('svg', 'rate-chart');
    chart.setAttribute('viewBox', '0 0 ' + CHART_W + ' ' + CHART_H);
    chart.setAttribute('preserveAspectRatio', 'none');
    chart.setAttribute('role', 'img');
    // Acks drawn over publishes, dashed: where the two lines agree, both show.
    chart.append(svg('polyline', 'line line-published'), svg('polyline', 'line line-acked'));
    const scale = el('span', 'rate-scale');
    const legend = el('figcaption', 'rate-legend');
    // "— 3 published  - - 1 acked": the counts of the last minute.
    const key = (kind, label) => {
      const item = el('span', 'key key-' + kind);
      item.append(el('i', 'swatch'), el('b', 'rate-now rate-' + kind, '0'), document.createTextNode(' ' + label));
      return item;
    };
    legend.append(key('published', 'published'), key('acked', 'acked'));
    box.title = 'Publishes (solid) and acks (dashed) per minute over the last 5 minutes; ' +
      'the numbers count the last minute';
    box.append(scale, chart, legend);
    return box;
  }

  // Adds what the counters of `q` grew since the last update to the current bucket; returns
  // whether its chart needs drawing. `baseline`: a full snapshot, whose counters are history.
  function countRates(q, baseline) {
    let r = rates.get(q.queue);
    const published = Number(q.published) || 0;
    const acked = Number(q.acked) || 0;
    if (!r) {
      r = { last: { published: 0, acked: 0 }, buckets: [], drawn: false, flat: false };
      rates.set(q.queue, r);
    }
    if (baseline) r.last = { published, acked };
    // A counter that went down: the server started again with fresh counters; count from here.
    const dp = Math.max(0, published - r.last.published);
    const da = Math.max(0, acked - r.last.acked);
    r.last = { published, acked };
    if (dp === 0 && da === 0) return !r.drawn;
    const at = Math.floor(Date.now() / BUCKET_MS);
    let bucket = r.buckets[r.buckets.length - 1];
    if (!bucket || bucket.at !== at) {
      bucket = { at, published: 0, acked: 0 };
      r.buckets.push(bucket);
    }
    bucket.published += dp;
    bucket.acked += da;
    return true;
  }

  // A round top for the chart's scale (a rate per minute): 12, 24, 60, 120, 240, 600... The
  // smallest is one message in a bucket, so a single publish reaches the top of a quiet chart.
  function niceTop(max) {
    for (let unit = PER_MINUTE; ; unit *= 10) {
      for (const step of [1, 2, 5]) if (unit * step >= max) return unit * step;
    }
  }

  // Draws the chart of queue `name` in `card` from its buckets.
  function drawChart(card, name) {
    const r = rates.get(name);
    if (!card || !r) return;
    const now = Math.floor(Date.now() / BUCKET_MS);
    const first = now - BUCKETS + 1;
    while (r.buckets.length && r.buckets[0].at < first) r.buckets.shift();
    const published = new Array(BUCKETS).fill(0);
    const acked = new Array(BUCKETS).fill(0);
    let sumP = 0;
    let sumA = 0;
    let minuteP = 0;
    let minuteA = 0;
    r.buckets.forEach((b) => {
      const i = b.at - first;
      published[i] = b.published * PER_MINUTE;
      acked[i] = b.acked * PER_MINUTE;
      sumP += b.published;
      sumA += b.acked;
      if (b.at > now - PER_MINUTE) {
        minuteP += b.published;
        minuteA += b.acked;
      }
    });
    const top = niceTop(Math.max(...published, ...acked));
    const line = (values) => values.map((v, i) => {
      const x = (i * CHART_W) / (BUCKETS - 1);
      const y = CHART_H - 2 - (v / top) * (CHART_H - 4);
      return x.toFixed(1) + ',' + y.toFixed(1);
    }).join(' ');
    const box = card.querySelector('.rates');
    box.querySelector('.line-published').setAttribute('points', line(published));
    box.querySelector('.line-acked').setAttribute('points', line(acked));
    box.querySelector('.rate-scale').textContent = '5 min · top ' + numberFormat.format(top) + '/min';
    box.querySelector('.rate-published').textContent = numberFormat.format(minuteP);
    box.querySelector('.rate-acked').textContent = numberFormat.format(minuteA);
    const chart = box.querySelector('.rate-chart');
    chart.dataset.published = String(sumP);
    chart.dataset.acked = String(sumA);
    chart.setAttribute('aria-label', name + ': ' + minuteP + ' published and ' + minuteA +
      ' acked in the last minute');
    r.drawn = true;
  }

  // At every bucket boundary the charts move left; a chart with nothing in its window is drawn
  // flat once and then left alone, so idle queues cost nothing.
  function tickCharts() {
    rates.forEach((r, name) => {
      if (r.buckets.length === 0 && r.flat) return;
      drawChart(cards.get(name), name);
      r.flat = r.buckets.length === 0;
    });
    setTimeout(tickCharts, BUCKET_MS - (Date.now() % BUCKET_MS) + 20);
  }
  setTimeout(tickCharts, BUCKET_MS - (Date.now() % BUCKET_MS) + 20);

  // ---- queues ----------------------------------------------------------------------------

  const cards = new Map(); // queue name -> card element

  function stat(kind, label) {
    const box = el('div', 'stat stat-' + kind);
    box.append(el('span', 'num ' + kind), el('span', 'label', label));
    return box;
  }

  function makeCard(name) {
    const card = el('article', 'queue');
    card.dataset.queue = name;

    const head = el('header', 'queue-head');
    const title = el('h3', 'queue-name', name);
    title.title = 'Click to publish to ' + name;
    title.addEventListener('click', () => {
      $('publish-queue').value = name;
      $('publish-event').focus();
    });
    head.append(title);

    const stats = el('div', 'stats');
    stats.append(stat('waiting', 'waiting'), stat('published', 'published'), stat('acked', 'acked'));

    // Rarer counters, on one line, each shown only when it is not 0: delayed messages not due
    // yet, messages whose TTL ran out, publishes a limit refused.
    const extras = el('div', 'extras');
    [['scheduled', 'scheduled'], ['expired', 'expired'], ['rejected', 'refused']].forEach(([kind, label]) => {
      const item = el('span', 'extra extra-' + kind);
      item.append(el('b', 'num ' + kind), document.createTextNode(' ' + label));
      extras.append(item);
    });

    const subs = el('ul', 'subscribers');
    const none = el('p', 'no-subscribers', 'No subscriber yet: new messages wait here for the first one.');

    card.append(head, stats, makeChart(), extras, subs, none);
    return card;
  }

  function makeClientRow(clientId) {
    const row = el('li', 'client');
    row.dataset.client = clientId;
    const who = el('span', 'who');
    const status = el('span', 'status');
    status.append(el('span', 'badge'), el('span', 'filter'));
    who.append(el('span', 'client-id', clientId), status);
    const pending = el('span', 'pending-box');
    pending.append(el('span', 'num pending'), el('span', 'label', 'pending'));
    row.append(who, pending);
    return row;
  }

  function updateClientRow(row, sub) {
    const online = !!sub.connected;
    row.dataset.connected = String(online);
    const badge = row.querySelector('.badge');
    badge.textContent = online ? (sub.sockets > 1 ? 'online ×' + sub.sockets : 'online') : 'offline';
    badge.title = online ? plural(sub.sockets, 'socket') + ' connected' : 'no socket connected';
    const filter = row.querySelector('.filter');
    filter.textContent = Array.isArray(sub.events) && sub.events.length ? 'only ' + sub.events.join(', ') : '';
    const pending = row.querySelector('.pending');
    setNumber(pending, sub.pending);
    row.classList.toggle('has-pending', sub.pending > 0);
  }

  function updateCard(card, q) {
    setNumber(card.querySelector('.waiting'), q.waiting);
    setNumber(card.querySelector('.published'), q.published);
    setNumber(card.querySelector('.acked'), q.acked);
    card.querySelector('.stat-waiting').classList.toggle('hot', q.waiting > 0);
    let anyExtra = false;
    ['scheduled', 'expired', 'rejected'].forEach((kind) => {
      const value = Number(q[kind]) || 0; // absent from older servers: 0
      setNumber(card.querySelector('.num.' + kind), value);
      card.querySelector('.extra-' + kind).hidden = value === 0;
      anyExtra = anyExtra || value > 0;
    });
    card.querySelector('.extras').hidden = !anyExtra;

    const list = card.querySelector('.subscribers');
    const rows = new Map();
    list.querySelectorAll(':scope > li').forEach((row) => rows.set(row.dataset.client, row));
    const subscribers = (q.subscribers || []).slice()
      .sort((a, b) => a.clientId.localeCompare(b.clientId));
    subscribers.forEach((sub, index) => {
      let row = rows.get(sub.clientId);
      if (!row) row = makeClientRow(sub.clientId);
      rows.delete(sub.clientId);
      updateClientRow(row, sub);
      if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
    });
    rows.forEach((row) => row.remove());
    card.querySelector('.no-subscribers').hidden = subscribers.length > 0;
    card.classList.toggle('orphan', subscribers.length === 0);
  }

  // The latest detail of every queue, by name, and the names in display order.
  const queueState = new Map();
  const collator = new Intl.Collator('en');
  let sortedNames = [];

  // Where `name` goes in sortedNames (binary search: a delta adds a queue in O(log n)).
  function sortedIndex(name) {
    let low = 0;
    let high = sortedNames.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (collator.compare(sortedNames[mid], name) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  function addCard(name) {
    const card = makeCard(name);
    cards.set(name, card);
    const index = sortedIndex(name);
    const next = index < sortedNames.length ? cards.get(sortedNames[index]) : null;
    sortedNames.splice(index, 0, name);
    queuesBox.insertBefore(card, next || null);
    return card;
  }

  function removeCard(name) {
    const card = cards.get(name);
    if (!card) return;
    card.remove();
    cards.delete(name);
    const index = sortedIndex(name);
    if (sortedNames[index] === name) sortedNames.splice(index, 1);
  }

  // A full snapshot: every queue, in order. Cards of queues it does not name are removed.
  function renderSnapshot(snapshot) {
    const queues = (snapshot.queues || []).slice().sort((a, b) => collator.compare(a.queue, b.queue));
    const named = new Set(queues.map((q) => q.queue));
    const removed = [...queueState.keys()].filter((name) => !named.has(name));
    // Build the order once (not one binary search per queue): new cards go in place below.
    sortedNames = queues.map((q) => q.queue).filter((name) => cards.has(name));
    applyQueues(queues, removed, snapshot, true);
    queues.forEach((q, index) => {
      const card = cards.get(q.queue);
      if (queuesBox.children[index] !== card) queuesBox.insertBefore(card, queuesBox.children[index] || null);
    });
    sortedNames = queues.map((q) => q.queue);
    queuesBox.dataset.ready = 'true';
  }

  // A delta: the queues that changed, and those that are gone.
  function applyDelta(delta) {
    const queues = delta.queues || [];
    applyQueues(queues, delta.removed || [], delta, false);
  }

  function applyQueues(queues, removed, totals, full) {
    const gone = new Set();
    let namesChanged = full;
    removed.forEach((name) => {
      if (!queueState.has(name)) return; // never shown: nothing to remove
      trackOnline(name, queueState.get(name), null, gone);
      queueState.delete(name);
      rates.delete(name);
      removeCard(name);
      namesChanged = true;
    });
    queues.forEach((q) => {
      trackOnline(q.queue, queueState.get(q.queue), q, gone);
      queueState.set(q.queue, q);
      let card = cards.get(q.queue);
      if (!card) {
        card = full ? makeCard(q.queue) : addCard(q.queue);
        cards.set(q.queue, card);
        namesChanged = true;
      }
      updateCard(card, q);
      if (countRates(q, full)) {
        drawChart(card, q.queue);
        rates.get(q.queue).flat = false;
      }
    });
    nameWhoWentOffline([...gone].sort(collator.compare));

    $('no-queues').hidden = queueState.size > 0;
    setNumber($('total-queues'), queueState.size);
    setNumber($('total-stored'), totals.storedMessages || 0);
    setNumber($('total-sockets'), totals.sockets || 0);

    // Offer the known queues in the publish form.
    if (namesChanged) {
      const names = $('queue-names');
      const ordered = [...queueState.keys()].sort(collator.compare);
      names.replaceChildren(...ordered.map((name) => {
        const option = document.createElement('option');
        option.value = name;
        return option;
      }));
    }
  }

  // ---- who went offline ------------------------------------------------------------------

  // A `disconnected` activity names the client only if the socket gave its id at connect (or
  // subscribed as it); otherwise it says "a socket". The next update shows which clients
  // went offline, so the feed row is completed from it.
  const onlineOn = new Map(); // client id -> the queues where it is online
  let unnamedDisconnects = []; // feed rows "a socket disconnected" waiting for a name

  // Updates onlineOn for one queue going from `before` to `after` (null: gone); adds to
  // `gone` the clients now online nowhere.
  function trackOnline(name, before, after, gone) {
    ((before && before.subscribers) || []).forEach((sub) => {
      const where = onlineOn.get(sub.clientId);
      if (!where || !where.delete(name) || where.size > 0) return;
      onlineOn.delete(sub.clientId);
      gone.add(sub.clientId);
    });
    ((after && after.subscribers) || []).forEach((sub) => {
      if (!sub.connected) return;
      if (!onlineOn.has(sub.clientId)) onlineOn.set(sub.clientId, new Set());
      onlineOn.get(sub.clientId).add(name);
      gone.delete(sub.clientId);
    });
  }

  function nameWhoWentOffline(gone) {
    const now = Date.now();
    unnamedDisconnects = unnamedDisconnects.filter((r) => r.isConnected && now - r.since < 2000);
    if (!gone.length || !unnamedDisconnects.length) return;
    const row = unnamedDisconnects.shift();
    const what = row.querySelector('.what');
    what.replaceChildren();
    gone.forEach((id, i) => {
      if (i > 0) what.append(document.createTextNode(', '));
      what.append(el('b', 'nm nm-client', id));
    });
    what.append(document.createTextNode(' went offline'));
    row.dataset.client = gone.join(' ');
  }

  // ---- the activity feed -----------------------------------------------------------------

  // One line of the feed: what happened, as short words with the names in bold.
  function describe(a) {
    const parts = [];
    const name = (text, cls) => parts.push(el('b', cls || 'nm', text));
    const word = (text) => parts.push(document.createTextNode(' ' + text + ' '));
    const client = (id) => (id ? name(id, 'nm nm-client') : word('a socket'));

    switch (a.kind) {
      case 'published':
        name(a.event, 'nm nm-event');
        word('→');
        name(a.queue, 'nm nm-queue');
        // "· 2 inboxes": it entered two clients' inboxes; "· waiting": nobody subscribes to
        // that queue yet, so it waits for the first subscriber.
        parts.push(el('span', 'detail', a.deliverAt
          ? '· due ' + clock(a.deliverAt)
          : a.recipients > 0 ? '· ' + plural(a.recipients, 'inbox', 'inboxes') : '· waiting'));
        return { tag: 'publish', parts };
      case 'due': // a delayed message became deliverable
        word('a delayed message →');
        name(a.queue, 'nm nm-queue');
        parts.push(el('span', 'detail', a.recipients > 0
          ? '· ' + plural(a.recipients, 'inbox', 'inboxes') : '· waiting'));
        return { tag: 'due', parts };
      case 'expired': // TTLs ran out
        word(plural(a.messages, 'message') + ' expired (TTL ran out)');
        (a.queues || []).forEach((q, i) => {
          word(i === 0 ? 'in' : ',');
          name(q, 'nm nm-queue');
        });
        return { tag: 'expired', parts };
      case 'kicked': // dead letters moved back
        word(plural(a.messages, 'dead letter') + ' kicked from');
        name(a.from, 'nm nm-queue');
        word('back to');
        name(a.queue, 'nm nm-queue');
        return { tag: 'kick', parts };
      case 'rejected': // a limit refused a publish
        word('a publish to');
        name(a.queue, 'nm nm-queue');
        word('was refused:');
        parts.push(el('b', 'nm nm-code', a.code));
        return { tag: 'refused', parts };
      case 'acked':
        client(a.client);
        word('acked ' + plural(a.removed, 'message'));
        return { tag: 'ack', parts };
      case 'subscribed':
        client(a.client);
        word('subscribed to');
        (a.queues || []).forEach((q, i) => {
          if (i > 0) parts.push(document.createTextNode(', '));
          name(q, 'nm nm-queue');
        });
        return { tag: 'subscribe', parts };
      case 'unsubscribed':
        client(a.client);
        word('left');
        name(a.queue, 'nm nm-queue');
        return { tag: 'leave', parts };
      case 'connected':
        client(a.client);
        word(a.client ? 'connected' : 'connected (no client id yet)');
        return { tag: 'online', parts };
      case 'disconnected':
        client(a.client);
        word('disconnected');
        return { tag: 'offline', parts };
      default: { // a kind this page does not know yet: show its fields
        const rest = Object.assign({}, a);
        delete rest.at;
        delete rest.kind;
        word(JSON.stringify(rest));
        return { tag: a.kind || '?', parts };
      }
    }
  }

  // The left column of a feed row: what kind of thing happened, and when.
  function stamp(tag, at) {
    const box = el('span', 'stamp');
    const time = el('time', 'when', clock(at));
    if (at) time.dateTime = at;
    box.append(el('span', 'tag tag-' + tag, tag === 'note' ? 'info' : tag), time);
    return box;
  }

  function addActivity(a) {
    if (!a || typeof a !== 'object') return;
    const row = el('li', 'act');
    row.dataset.kind = a.kind;
    if (a.queue) row.dataset.queue = a.queue;
    if (a.client) row.dataset.client = a.client;
    if (a.id) row.dataset.id = a.id;

    const { tag, parts } = describe(a);
    const what = el('span', 'what');
    what.append(...parts);
    row.append(stamp(tag, a.at), what);

    feed.prepend(row);
    while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove();
    $('feed-empty').hidden = true;
    if (a.kind === 'disconnected' && !a.client) {
      row.since = Date.now();
      unnamedDisconnects.push(row);
    }
  }

  function addNote(text) {
    const row = el('li', 'act note');
    row.dataset.kind = 'note';
    row.append(stamp('note', null), el('span', 'what', text));
    feed.prepend(row);
    while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove();
    $('feed-empty').hidden = true;
  }

  // ---- the publish form ------------------------------------------------------------------

  function showResult(state, text, id) {
    const line = $('publish-result');
    line.dataset.state = state;
    line.textContent = text;
    if (id) line.dataset.id = id;
    else delete line.dataset.id;
  }

  async function publish(event) {
    event.preventDefault();
    const queue = $('publish-queue').value.trim();
    const name = $('publish-event').value.trim();
    const raw = $('publish-payload').value.trim();
    if (!queue) return showResult('error', '✗ Type a queue name.');
    if (!name) return showResult('error', '✗ Type an event name.');

    const body = { event: name };
    if (raw) {
      try {
        body.payload = JSON.parse(raw);
      } catch (err) {
        return showResult('error', '✗ The payload is not valid JSON: ' + err.message);
      }
    }

    const button = $('publish-submit');
    button.disabled = true;
    showResult('busy', 'Publishing…');
    try {
      const headers = { 'content-type': 'application/json' };
      if (apiKey) headers.authorization = 'Bearer ' + apiKey;
      const response = await fetch('/v1/queues/' + encodeURIComponent(queue) + '/messages', {
        method: 'POST',
        headers: headers,
        body: JSON.stringify(body),
      });
      let answer = null;
      try {
        answer = await response.json();
      } catch (err) {
        /* not JSON: reported below */
      }
      if (response.ok && answer && answer.id) {
        const where = answer.recipients > 0
          ? 'into ' + plural(answer.recipients, 'inbox', 'inboxes')
          : 'it waits for a first subscriber';
        showResult('ok', '✓ Published ' + answer.event + ' → ' + answer.queue + ': ' + where + '.', answer.id);
      } else if (answer && answer.error) {
        showResult('error', '✗ ' + response.status + ' ' + answer.error.code + ': ' + answer.error.message);
        if (response.status === 401) $('key-form').hidden = false;
      } else {
        showResult('error', '✗ HTTP ' + response.status + ' ' + response.statusText);
      }
    } catch (err) {
      showResult('error', '✗ Could not reach queuehub: ' + err.message);
    } finally {
      button.disabled = false;
    }
  }

  $('publish-form').addEventListener('submit', publish);
  $('key-form').addEventListener('submit', useKey);

  // ---- wire it up ------------------------------------------------------------------------

  // The official socket.io client (vendor/socket.io.min.js, which defines `io`). By default it
  // starts with HTTP long-polling and upgrades to a WebSocket when it can, so the page works
  // behind proxies that refuse WebSockets. "/dashboard?transport=websocket" (or "=polling")
  // keeps it to one transport, to try either (the browser test does).
  const forced = new URLSearchParams(location.search).get('transport');
  const options = {
    // Called at every (re)connect, so a key typed later is used on the next attempt.
    auth: (send) => send(apiKey ? { apiKey: apiKey } : null),
    reconnectionDelay: 500,
    reconnectionDelayMax: 10000,
  };
  if (forced === 'websocket' || forced === 'polling') options.transports = [forced];
  const socket = io('/dashboard', options);
  const manager = socket.io;
  let everConnected = false;
  let retryTimer = null;

  // "live · websocket": the transport in use, updated when polling upgrades to a WebSocket.
  function showLive() {
    const engine = manager.engine;
    const transport = engine && engine.transport ? engine.transport.name : '';
    showConnection('live', transport ? 'live · ' + transport : 'live', transport);
  }

  socket.on('connect', () => {
    clearTimeout(retryTimer);
    $('key-form').hidden = true;
    showLive();
    if (manager.engine) manager.engine.once('upgrade', showLive);
    if (everConnected) addNote('Reconnected to queuehub.');
    everConnected = true;
  });
  socket.on('disconnect', (reason) => {
    showConnection('offline', 'offline · reconnecting…');
    addNote('Lost the connection to queuehub (' + reason + '); numbers may be out of date.');
    // The client reconnects by itself after a lost transport, but not when the server closed
    // the namespace: then try again after a pause.
    if (reason === 'io server disconnect') retryLater();
  });
  socket.on('connect_error', (err) => {
    // While socket.active the client keeps retrying by itself (queuehub unreachable).
    if (socket.active) {
      showConnection('offline', 'offline · reconnecting…');
      return;
    }
    // The server refused the namespace. "unauthorized: ..." is queuehub's answer to a missing
    // or wrong API key; retrying with the same key cannot help, so the page asks for one.
    if (/^unauthorized/.test(err.message)) {
      socket.disconnect();
      askForKey(err.message);
    } else {
      showConnection('offline', 'refused: ' + err.message);
      retryLater();
    }
  });
  manager.on('reconnect_attempt', (attempt) => {
    showConnection('offline', 'offline · reconnecting' + (attempt > 1 ? ' (try ' + attempt + ')' : '') + '…');
  });

  function retryLater() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      if (!socket.connected && $('key-form').hidden) socket.connect();
    }, 3000);
  }

  socket.on('snapshot', renderSnapshot);
  socket.on('snapshot:delta', applyDelta);
  socket.on('activity', addActivity);

  // For debugging in the browser console (and trying the page with made-up data).
  window.queuehubDashboard = { socket, renderSnapshot, applyDelta, addActivity };
})();
