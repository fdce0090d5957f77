// The live picture of an LSP server's sliding windows (served by lsp/web.py). Plain JavaScript,
// no framework: it polls GET /windows every POLL_MILLIS and redraws one card per connection.
// A connection that left the server's table stays drawn, greyed, for GONE_MILLIS. Every failure
// (a fetch that fails, a 503 once the server has closed) becomes a line on the page, never an
// exception in the console.
"use strict";

const POLL_MILLIS = 200;
const GONE_MILLIS = 8000;
const ACKED_SHOWN = 4;          // acknowledged messages drawn left of the window
const MAX_CELLS = 80;           // cells per send row at most

const state = {
  cards: new Map(),              // conn_id -> {element, last picture, goneAt (ms) or null}
};

const $ = (id) => document.getElementById(id);

function element(tag, className, text, parent) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined && text !== null) made.textContent = text;
  if (parent) parent.appendChild(made);
  return made;
}

// ---- talking to the server --------------------------------------------------------------------

async function poll() {
  try {
    const response = await fetch("/windows");
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = { error: `${response.status} ${response.statusText}` };
    }
    if (response.ok) {
      show(body);
      $("connection").textContent = "live";
      $("connection").className = "";
    } else {
      $("connection").textContent = body.error;
      $("connection").className = "down";
    }
  } catch (err) {
    $("connection").textContent = "the LSP server's page does not answer";
    $("connection").className = "down";
  }
  setTimeout(poll, POLL_MILLIS);
}

// ---- drawing ----------------------------------------------------------------------------------

function show(doc) {
  document.title = doc.title;
  $("title").textContent = doc.title;
  const p = doc.params;
  $("server").textContent =
    `epoch ${doc.epochs} (${p.epoch_millis} ms each) · epoch limit ${p.epoch_limit} · ` +
    `window ${p.window_size} · max unacked ${p.max_unacked_messages} · ` +
    `max backoff ${p.max_back_off_interval} · ${doc.reads_queued} read(s) waiting` +
    (doc.closing ? " · closing" : "");
  const now = Date.now();
  const present = new Set();
  for (const conn of doc.connections) {
    present.add(conn.conn_id);
    let card = state.cards.get(conn.conn_id);
    if (!card) {
      card = { element: element("section", "conn", null, $("connections")) };
      card.element.dataset.conn = conn.conn_id;
      state.cards.set(conn.conn_id, card);
    }
    card.picture = conn;
    card.goneAt = null;
    drawCard(card, now);
  }
  for (const [connId, card] of state.cards) {
    if (present.has(connId)) continue;
    if (card.goneAt === null) {
      card.goneAt = now;
      drawCard(card, now);
    } else if (now - card.goneAt > GONE_MILLIS) {
      card.element.remove();
      state.cards.delete(connId);
    }
  }
  $("empty").hidden = state.cards.size > 0;
}

function drawCard(card, now) {
  const conn = card.picture;
  const send = conn.send;
  const root = card.element;
  const gone = card.goneAt !== null;
  root.className = gone ? "conn gone" : "conn";
  root.dataset.sent = send.sent;
  root.dataset.acked = send.acked;
  root.dataset.unacked = send.unacked;
  root.dataset.gone = gone;
  root.replaceChildren();

  const heading = element("h2", null, `connection ${conn.conn_id} · client ${conn.address}`, root);
  const what = gone ? "gone: lost, or closed and drained" : conn.closing
    ? "closing: sending what was written" : "live";
  element("span", "state", what, heading);

  const heard = element("div", "heard", "last heard", root);
  const meter = element("span", "meter", null, heard);
  const share = Math.min(conn.silent_epochs / conn.epoch_limit, 1);
  meter.classList.add(share >= 0.8 ? "danger" : share >= 0.4 ? "warn" : "ok");
  element("span", null, null, meter).style.width = `${Math.round((1 - share) * 100)}%`;
  element("span", null, `${conn.silent_epochs} epoch(s) ago; lost after ${conn.epoch_limit} ` +
          "silent epochs", heard);

  element("div", "counts",
          `sent ${send.sent} · acknowledged ${send.acked} · unacknowledged ${send.unacked} · ` +
          `pending ${send.pending} · retransmissions ${send.retransmissions}`, root);

  const row = element("div", "row send", null, root);
  element("span", "label", "send", row);
  drawSendCells(row, send);

  const receive = element("div", "row receive", null, root);
  element("span", "label", "receive", receive);
  element("span", "more", `next expected ${conn.receive.expected}` +
          (conn.receive.buffered_seqs.length ? "; buffered out of order:" : ""), receive);
  for (const seq of conn.receive.buffered_seqs) element("span", "cell buffered", seq, receive);
}

function drawSendCells(row, send) {
  const inFlight = new Map(send.in_flight.map((m) => [m.seq, m]));
  const pending = new Set(send.pending_seqs);
  const firstSeq = send.next_seq - send.sent - send.pending;   // the first number ever sent
  const start = Math.max(send.window_start - ACKED_SHOWN, firstSeq);
  const shownFlight = send.in_flight.length ? send.in_flight[send.in_flight.length - 1].seq : 0;
  const listed = send.pending_seqs;
  const shownPending = listed.length ? listed[listed.length - 1] : 0;
  let end = Math.max(send.window_end - 1, shownFlight, shownPending);
  // Past the listed in-flight messages (the server lists at most 64) nothing is known.
  if (send.unacked > send.in_flight.length) end = shownFlight;
  end = Math.min(end, start + MAX_CELLS - 1);
  if (start > firstSeq) element("span", "more", "…", row);
  for (let seq = start; seq <= end; seq++) {
    const flight = inFlight.get(seq);
    let cell;
    if (flight) {
      cell = element("span", flight.backoff > 0 ? "cell flight resent" : "cell flight", seq, row);
      element("small", null, `b${flight.backoff} w${flight.waited}`, cell);
      cell.title = `${flight.bytes} bytes; backoff ${flight.backoff} epoch(s); ` +
        `waited ${flight.waited} since last sent`;
    } else if (pending.has(seq)) {
      cell = element("span", "cell pending", seq, row);
    } else if (seq < send.next_seq - send.pending) {
      cell = element("span", "cell acked", seq, row);
    } else {
      cell = element("span", "cell", "·", row);   // a number not written yet
      cell.title = `${seq}: not written yet`;
    }
    cell.dataset.seq = seq;
    if (seq >= send.window_start && seq < send.window_end) cell.classList.add("inwin");
  }
  const drawn = Math.max(end, send.window_start - 1);
  const notDrawn = Math.max(send.next_seq - 1 - drawn, 0);
  if (notDrawn > 0) element("span", "more", `and ${notDrawn} more (in flight or pending)`, row);
}

poll();
