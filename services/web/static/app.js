// The timeline page: pick a timeline, draw it (vis-timeline) and list it, follow it live.
// Plain browser JavaScript, no build step; everything it loads comes from this server.
"use strict";

(() => {
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const PRECISION_RANK = { year: 0, month: 1, day: 2 };
  const DAY_MS = 24 * 60 * 60 * 1000;
  const MAX_PAGES = 10; // 10 × 1000 entries: beyond that, narrow the timeline
  const $ = (id) => document.getElementById(id);

  const state = {
    kind: "entity", keys: [], city: "", retracted: false,
    entries: new Map(), fresh: new Set(), live: null, items: null, timeline: null,
    loading: 0, // which load is current: an older one still paging stops at its next step
    held: null, // live entries that arrived while the pages load, applied after them
    capped: false, // the load stopped at MAX_PAGES with entries left
    rows: new Map(), // key → its table row
    pending: new Set(), frame: 0, // keys of live entries to draw at the next animation frame
    reopen: 0, wait: 0, // the timer that reopens a closed stream; how long it waited
  };
  const LIVE_OPEN_MS = 3000; // how long a load waits for the live stream before paging
  const REOPEN_MS = 1000; // a closed stream is reopened after 1 s, then 2 s, 4 s... 30 s
  const REOPEN_MAX_MS = 30000;

  // "2023-12?" → "Dec 2023?", "2023-08-14/2023-08-18" → "14 Aug 2023 – 18 Aug 2023"
  function partLabel(text) {
    const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?([?~%]?)$/.exec(text);
    if (!m) return text;
    const [, year, month, day, qualifier] = m;
    const shown = day ? `${Number(day)} ${MONTHS[month - 1]} ${year}`
      : month ? `${MONTHS[month - 1]} ${year}` : year;
    return shown + qualifier;
  }
  const dateLabel = (occurred) => occurred.split("/").map(partLabel).join(" – ");
  const keyOf = (entry) => `${entry.source}\u001f${entry.id}`;
  // Python's str.split() whitespace, not JavaScript's \s (which lacks \x1c-\x1f and \x85
  // and has \ufeff): the key must be the one the server files the entry under.
  const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;
  const cityKey = (city) => city.toLowerCase().split(PY_SPACE).filter(Boolean).join(" ");

  // Local midnight starting the day `iso` (+ `days`), in ms: the axis is drawn in local
  // time. A number, as the day after 9999-12-31 is no 10-character ISO date; setFullYear,
  // as the Date constructor reads years 0-99 as 1900-1999.
  function midnight(iso, days = 0) {
    const [year, month, day] = iso.split("-").map(Number);
    const date = new Date(0);
    date.setFullYear(year, month - 1, day + days);
    date.setHours(0, 0, 0, 0);
    return date.getTime();
  }

  function byTimelineOrder(a, b) {
    const left = [a.occurred_start, PRECISION_RANK[a.precision], a.recordedtime, a.source, a.id];
    const right = [b.occurred_start, PRECISION_RANK[b.precision], b.recordedtime, b.source, b.id];
    for (let i = 0; i < left.length; i += 1) {
      if (left[i] < right[i]) return -1;
      if (left[i] > right[i]) return 1;
    }
    return 0;
  }

  // --- the URL is the state: /?entity=ID, ?pair=A,B, ?place=KR&city=Seoul, ?topic=ai, ?all

  function readUrl() {
    const query = new URLSearchParams(window.location.search);
    state.kind = "entity";
    state.keys = [];
    for (const kind of ["entity", "pair", "place", "topic"]) {
      if (query.has(kind)) {
        state.kind = kind;
        state.keys = query.get(kind).split(",").map((k) => k.trim()).filter(Boolean);
        if (kind === "place") state.keys = state.keys.map((k) => k.toUpperCase());
      }
    }
    if (query.has("all")) state.kind = "all";
    state.city = query.get("city") || "";
    state.retracted = query.get("retracted") === "1";
  }

  function writeUrl() {
    const query = new URLSearchParams();
    if (state.kind === "all") query.set("all", "");
    else query.set(state.kind, state.keys.join(","));
    if (state.kind === "place" && state.city) query.set("city", state.city);
    if (state.retracted) query.set("retracted", "1");
    window.history.pushState(null, "", `/?${query.toString().replace(/=$/, "")}`);
  }

  function fillForm() {
    $("kind").value = state.kind;
    $("key1").value = state.keys[0] || "";
    $("key2").value = state.keys[1] || "";
    $("city").value = state.city;
    $("retracted").checked = state.retracted;
    showInputs();
  }

  function showInputs() {
    const kind = $("kind").value;
    const placeholders = {
      entity: "entity, e.g. lg-ai-research", pair: "first entity",
      place: "country code, e.g. US", topic: "topic, e.g. ai",
    };
    const names = { entity: "entity id", pair: "first entity id", place: "country code", topic: "topic" };
    $("key1").hidden = kind === "all";
    $("key1").placeholder = placeholders[kind] || "";
    $("key1").setAttribute("aria-label", names[kind] || "key"); // a placeholder is no label
    $("key2").hidden = kind !== "pair";
    $("city").hidden = kind !== "place";
    const entities = kind === "entity" || kind === "pair";
    for (const id of ["key1", "key2"]) {
      if (entities) $(id).setAttribute("list", "entity-options");
      else $(id).removeAttribute("list");
    }
  }

  function readForm() {
    state.kind = $("kind").value;
    const keys = [$("key1").value.trim()];
    if (state.kind === "pair") keys.push($("key2").value.trim());
    state.keys = state.kind === "all" ? [] : keys.map((k) => (state.kind === "place" ? k.toUpperCase() : k));
    state.city = state.kind === "place" ? $("city").value.trim() : "";
    state.retracted = $("retracted").checked;
  }

  // --- the API

  function apiPath() {
    const [a, b] = state.keys.map(encodeURIComponent);
    switch (state.kind) {
      case "pair": return `/v1/timelines/pair/${a}/${b}`;
      case "all": return "/v1/timelines/all";
      default: return `/v1/timelines/${state.kind}/${a}`;
    }
  }

  function timelineName() {
    const [a, b] = state.keys;
    switch (state.kind) {
      case "pair": return `pair:${[a, b].sort().join(":")}`;
      case "place": return state.city ? `place:${a}:${cityKey(state.city)}` : `place:${a}`;
      case "all": return "all";
      default: return `${state.kind}:${a}`;
    }
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      // The message mostly says the problem already ("path.0: 'x' is not an entity id"
      // with that very problem in `errors`): add only what it does not say.
      const message = body && body.message ? body.message : response.statusText;
      const more = ((body && body.errors) || []).filter((e) => !message.includes(e.message))
        .map((e) => (e.path ? `${e.path}: ${e.message}` : e.message));
      throw new Error(more.length ? `${message} (${more.join("; ")})` : message);
    }
    return body;
  }

  async function suggest(input) {
    const prefix = input.value.trim();
    if (!prefix || input.getAttribute("list") !== "entity-options") return;
    try {
      const body = await getJson(`/v1/entities?prefix=${encodeURIComponent(prefix)}&limit=12`);
      const options = body.entities.map((e) => {
        const option = document.createElement("option");
        option.value = e.id;
        option.label = e.name ? `${e.name}${e.kind ? ` (${e.kind})` : ""}` : e.id;
        return option;
      });
      $("entity-options").replaceChildren(...options);
    } catch (error) {
      // Suggestions are a convenience: a failure leaves the input usable as is.
    }
  }

  // --- loading and drawing

  async function load() {
    stopLive();
    const current = ++state.loading;
    state.entries.clear();
    state.capped = false;
    state.fresh.clear();
    if (state.kind !== "all" && state.keys.filter(Boolean).length < (state.kind === "pair" ? 2 : 1)) {
      $("title").textContent = "";
      $("message").textContent = "Pick a timeline: an entity, a pair, a place or a topic.";
      render();
      return;
    }
    const what = state.kind === "all" ? "Everything" : `${state.kind} ${state.keys.join(" & ")}${state.city ? `, ${state.city}` : ""}`;
    $("title").textContent = what;
    $("message").textContent = "Loading…";
    if (state.kind === "entity") nameTitle(state.keys[0]);
    // The live stream first: what is projected while the pages load arrives on it, held
    // until the pages are in, then applied over them in the order it was projected.
    const path = apiPath();
    await startLive();
    if (current !== state.loading) return;
    try {
      let cursor = null;
      for (let page = 0; page < MAX_PAGES; page += 1) {
        const query = new URLSearchParams({ limit: "1000" });
        if (state.retracted) query.set("include_retracted", "true");
        if (state.kind === "place" && state.city) query.set("city", state.city);
        if (cursor) query.set("cursor", cursor);
        const body = await getJson(`${path}?${query}`);
        if (current !== state.loading) return; // another timeline was picked meanwhile
        for (const entry of body.entries) state.entries.set(keyOf(entry), entry);
        cursor = body.next_cursor;
        if (!cursor) break;
      }
      const held = state.held || [];
      state.held = null;
      for (const message of held) applyLive(message);
      state.capped = Boolean(cursor);
      $("message").textContent = entriesLine();
      render();
    } catch (error) {
      if (current !== state.loading) return;
      stopLive(); // live entries onto a list that failed to load would pass for a timeline
      $("message").textContent = `Could not load this timeline: ${error.message}`;
      render();
    }
  }

  async function nameTitle(ident) {
    try {
      const summary = await getJson(`/v1/entities/${encodeURIComponent(ident)}`);
      if (summary.name && state.kind === "entity" && state.keys[0] === ident) {
        $("title").textContent = `${summary.name} (${ident})`;
      }
    } catch (error) {
      // An entity nobody named yet keeps its id as the title.
    }
  }

  function itemOf(entry) {
    const label = dateLabel(entry.occurred);
    const content = document.createElement("span");
    content.textContent = `${label} · ${entry.headline}`;
    const classes = [`precision-${entry.precision}`, `status-${entry.status}`];
    if (entry.qualifier) classes.push("qualified");
    if (state.fresh.has(keyOf(entry))) classes.push("fresh");
    const point = entry.precision === "day" && entry.occurred_start === entry.occurred_end;
    const title = document.createElement("span"); // an element: never parsed as HTML
    title.textContent = `${label}: ${entry.headline}`;
    return {
      id: keyOf(entry), content, title,
      className: classes.join(" "), type: point ? "point" : "range",
      // `end` even for a point: an update merges into the item, and leaves no stale end
      start: midnight(entry.occurred_start), end: point ? undefined : midnight(entry.occurred_end, 1),
    };
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function rowOf(entry) {
    const row = document.createElement("tr");
    row.dataset.key = keyOf(entry);
    row.dataset.type = entry.type;
    row.dataset.status = entry.status;
    if (state.fresh.has(keyOf(entry))) row.classList.add("fresh");
    const who = entry.entities.map((e) => e.name || e.id).join(", ");
    row.append(cell(dateLabel(entry.occurred), "when"), cell(entry.type, "type"),
      cell(entry.headline, "headline"), cell(who, "who"));
    const status = document.createElement("td");
    if (entry.status !== "active") {
      const badge = document.createElement("button");
      badge.type = "button";
      badge.className = `badge ${entry.status}`;
      badge.textContent = entry.status === "corrected" ? `corrected (v${entry.version})` : entry.status;
      badge.title = "show every stored version";
      status.append(badge);
    }
    row.append(status);
    // Reachable by keyboard too: Tab to the row, Enter or Space opens its history (a
    // press on the badge is the badge's own click, which reaches the row as one).
    row.tabIndex = 0;
    row.addEventListener("click", () => openHistory(entry));
    row.addEventListener("keydown", (event) => {
      if (event.target !== row || (event.key !== "Enter" && event.key !== " ")) return;
      event.preventDefault(); // Space would scroll the page
      openHistory(entry);
    });
    return row;
  }

  // Everything drawn afresh, the chart fitted to it: for a load. Live entries are drawn
  // one by one (drawLive).
  function render() {
    const entries = [...state.entries.values()].sort(byTimelineOrder);
    state.items.clear();
    state.items.add(entries.map(itemOf));
    const rows = entries.map(rowOf);
    state.rows = new Map(rows.map((row) => [row.dataset.key, row]));
    $("list").tBodies[0].replaceChildren(...rows);
    if (entries.length) {
      // The entries' whole span plus a margin: labels run past a span's end.
      const start = Math.min(...entries.map((e) => midnight(e.occurred_start)));
      const end = Math.max(...entries.map((e) => midnight(e.occurred_end, 1)));
      const margin = Math.max((end - start) * 0.1, DAY_MS * 20);
      state.timeline.setWindow(start - margin, end + margin, { animation: false });
    }
  }

  // --- history of one entry (GET /v1/events?source=&id=)

  async function openHistory(entry) {
    const dialog = $("history");
    $("history-title").textContent = entry.headline;
    $("history-entry").textContent = `${dateLabel(entry.occurred)} · ${entry.type} · ${entry.status}, version ${entry.version} · ${entry.source} ${entry.id}`;
    $("history-versions").replaceChildren();
    if (!dialog.open) dialog.showModal();
    try {
      const query = new URLSearchParams({ source: entry.source, id: entry.id });
      const body = await getJson(`/v1/events?${query}`);
      $("history-versions").replaceChildren(...body.history.map((version) => {
        const item = document.createElement("li");
        item.className = `version ${version.type.replace(".", "-")}`;
        const head = document.createElement("div");
        head.textContent = `${version.type} · recorded ${version.recordedtime} by ${version.recordedby} · position ${version.position}`;
        item.append(head);
        for (const [name, value] of [["reason", version.reason], ["occurred", version.occurred]]) {
          if (value) {
            const line = document.createElement("div");
            line.textContent = `${name}: ${name === "occurred" ? `${value} (${dateLabel(value)})` : value}`;
            item.append(line);
          }
        }
        if (version.data) {
          const pre = document.createElement("pre");
          pre.textContent = JSON.stringify(version.data, null, 2);
          item.append(pre);
        }
        return item;
      }));
    } catch (error) {
      $("history-entry").textContent += ` — history unavailable: ${error.message}`;
    }
  }

  // --- live updates (GET /v1/live, Server-Sent Events)

  function liveQuery() {
    if (state.kind === "entity" || state.kind === "pair") return `entity=${encodeURIComponent(state.keys[0])}`;
    if (state.kind === "topic") return `topic=${encodeURIComponent(state.keys[0])}`;
    return "";
  }

  function setLive(text, on) {
    $("live-status").textContent = text;
    $("live-status").className = `live ${on ? "on" : "off"}`;
  }

  // Resolves once the stream is open (or closed, or after LIVE_OPEN_MS without it: the
  // page still loads, only not live); entries then wait in state.held until the load
  // applies them.
  function startLive() {
    if (!window.EventSource) return Promise.resolve();
    state.held = [];
    const source = openLive();
    return new Promise((resolve) => {
      source.addEventListener("open", resolve, { once: true });
      source.addEventListener("error", () => source.readyState === EventSource.CLOSED && resolve());
      setTimeout(resolve, LIVE_OPEN_MS);
    });
  }

  // The stream, with its listeners, as state.live.
  function openLive() {
    const source = new EventSource(`/v1/live?${liveQuery()}`);
    state.live = source;
    source.addEventListener("open", () => setLive("live", true));
    source.addEventListener("error", () => {
      if (source !== state.live) return;
      if (source.readyState !== EventSource.CLOSED) {
        setLive("live: reconnecting…", false); // the browser retries by itself
        return;
      }
      // The browser gave up: an answer other than a stream (a 503, a proxy's 502 while
      // the API is down) closes it for good. Reopen it later, waiting longer each time.
      state.live = null;
      state.wait = Math.min(state.wait ? state.wait * 2 : REOPEN_MS, REOPEN_MAX_MS);
      setLive(`live: off, retrying in ${state.wait / 1000} s`, false);
      state.reopen = setTimeout(reopenLive, state.wait);
    });
    source.addEventListener("reset", () => load()); // missed more than the stream keeps
    source.addEventListener("entry", (event) => {
      const message = JSON.parse(event.data);
      if (state.held) {
        state.held.push(message);
        return;
      }
      if (applyLive(message)) {
        // Drawn at the next frame, with whatever else arrives by then: a burst costs one
        // redraw of the chart, and no entry rebuilds what it did not change.
        state.pending.add(keyOf(message.entry));
        if (!state.frame) state.frame = requestAnimationFrame(drawLive);
      }
    });
    return source;
  }

  // A new stream starts at the newest entry (it has no Last-Event-ID to resume from):
  // once it opens, load the timeline again for what was sent while none was open.
  function reopenLive() {
    state.reopen = 0;
    setLive("live: reconnecting…", false);
    openLive().addEventListener("open", () => load(), { once: true });
  }

  // One live entry onto the list; whether it changed anything.
  function applyLive({ entry, timelines }) {
    const key = keyOf(entry);
    const belongs = timelines.includes(timelineName()) && (state.retracted || entry.status !== "retracted");
    if (!belongs && !state.entries.has(key)) return false;
    if (belongs) {
      state.entries.set(key, entry);
      state.fresh.add(key);
    } else {
      state.entries.delete(key); // retracted, or corrected off this timeline
    }
    return true;
  }

  // "1 entry", "2,800 entries (the first 10,000; ...)": live updates keep the cap's note.
  function entriesLine() {
    const size = state.entries.size;
    const more = state.capped ? " (the first 10,000; narrow the timeline to see the rest)" : "";
    return `${size.toLocaleString("en")} ${size === 1 ? "entry" : "entries"}${more}`;
  }

  // The pending live entries onto the chart and the list, leaving the rest as they are.
  function drawLive() {
    state.frame = 0;
    const body = $("list").tBodies[0];
    // Their rows out first: the rows left are then in order by the entries they show.
    for (const key of state.pending) {
      if (state.rows.has(key)) state.rows.get(key).remove();
      state.rows.delete(key);
    }
    const entries = [...state.pending].map((key) => state.entries.get(key)).filter(Boolean);
    for (const entry of entries) {
      const row = rowOf(entry);
      state.rows.set(row.dataset.key, row);
      body.insertBefore(row, rowAfter(body.rows, entry));
    }
    state.items.remove([...state.pending].filter((key) => !state.entries.has(key)));
    state.items.update(entries.map(itemOf)); // adds those not drawn yet
    state.pending.clear();
    $("message").textContent = `${entriesLine()} · updated ${new Date().toLocaleTimeString()}`;
  }

  // The first of the sorted rows that sorts after `entry` (null if none): a binary search.
  function rowAfter(rows, entry) {
    let low = 0;
    let high = rows.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (byTimelineOrder(state.entries.get(rows[middle].dataset.key), entry) <= 0) low = middle + 1;
      else high = middle;
    }
    return rows[low] || null;
  }

  function stopLive() {
    // Live entries not drawn yet go with the stream: a load draws what it keeps.
    cancelAnimationFrame(state.frame);
    state.frame = 0;
    state.pending.clear();
    clearTimeout(state.reopen); // a stream closed for another timeline stays closed
    state.reopen = 0;
    state.wait = 0;
    if (state.live) state.live.close();
    state.live = null;
    state.held = null;
    setLive("live: off", false);
  }

  // --- wiring

  function start() {
    state.items = new vis.DataSet();
    state.timeline = new vis.Timeline($("timeline"), state.items, {
      stack: true, zoomMin: DAY_MS * 7, zoomMax: DAY_MS * 366 * 10000,  // years 1-9999: fit any span
      orientation: { axis: "top" }, margin: { item: 6 }, maxHeight: 420, selectable: true,
      tooltip: { followMouse: true },
    });
    state.timeline.on("select", ({ items }) => {
      const entry = state.entries.get(items[0]);
      if (entry) openHistory(entry);
    });
    $("kind").addEventListener("change", showInputs);
    let pending = null;
    for (const id of ["key1", "key2"]) {
      $(id).addEventListener("input", () => {
        clearTimeout(pending);
        pending = setTimeout(() => suggest($(id)), 150);
      });
    }
    $("pick").addEventListener("submit", (event) => {
      event.preventDefault();
      readForm();
      writeUrl();
      load();
    });
    $("retracted").addEventListener("change", () => $("pick").requestSubmit());
    window.addEventListener("popstate", () => { readUrl(); fillForm(); load(); });
    readUrl();
    fillForm();
    load();
  }

  start();
})();
