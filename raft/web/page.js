// The live picture of a Raft cluster (served by raft/web.py). Plain JavaScript, no framework:
// it polls GET /frame every POLL_MILLIS while live, keeps the newest frame, and redraws the
// ring, the logs and the controls from it; the RPC dots are redrawn on every animation frame.
// Every failure (a fetch that fails, a 4xx from a control) becomes a line on the page, never an
// exception in the console.
"use strict";

const POLL_MILLIS = 150;
const TRAVEL_MILLIS = 450;       // how long a message takes to cross the ring, in the picture
const LOST_MILLIS = 600;         // how long a lost message's cross stays
const MESSAGE_DELAY_MILLIS = 350; // events reach the page this late at most: draw that far back
const TIMER_FULL_MILLIS = 800;   // the longest election timeout: a full timer circle
const LOG_CELLS = 30;
const CENTER = 260, RING_RADIUS = 190, NODE_RADIUS = 40;
const SVG_NS = "http://www.w3.org/2000/svg";
const RPC_CLASS = { RequestVote: "rv", AppendEntries: "ae", InstallSnapshot: "is" };
const ACTIONS = ["kill", "restart", "pause", "resume", "cut", "heal"];

const state = {
  frame: null,          // the frame drawn now
  receivedAt: 0,        // performance.now() when it came (live only)
  live: true,
  newestSeq: 0,
  newestMillis: 0,
  oldestSeq: 0,
  builtFor: -1,         // how many nodes the ring and the controls were built for
};

const $ = (id) => document.getElementById(id);

function svg(tag, attributes, parent) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (parent) parent.appendChild(element);
  return element;
}

function nodePosition(id, count) {
  const angle = -Math.PI / 2 + (2 * Math.PI * id) / count;
  return { x: CENTER + RING_RADIUS * Math.cos(angle), y: CENTER + RING_RADIUS * Math.sin(angle) };
}

function termColour(term) {
  return `hsl(${(term * 67) % 360}, 65%, 72%)`;
}

function say(text, isError) {
  const message = $("message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

// ---- talking to the server --------------------------------------------------------------------

async function getJson(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = { error: `${response.status} ${response.statusText}` };
  }
  return { ok: response.ok, body };
}

async function poll() {
  if (state.live) {
    try {
      const { ok, body } = await getJson("/frame");
      if (ok) {
        show(body, true);
        $("connection").textContent = "live";
        $("connection").className = "";
      } else {
        $("connection").textContent = body.error;
      }
    } catch (err) {
      $("connection").textContent = "the cluster's page server does not answer";
      $("connection").className = "down";
    }
  }
  setTimeout(poll, POLL_MILLIS);
}

async function post(url, payload) {
  try {
    const options = { method: "POST" };
    if (payload !== undefined) {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(payload);
    }
    const { ok, body } = await getJson(url, options);
    say(ok ? body.message : body.error, !ok);
  } catch (err) {
    say("the cluster's page server does not answer", true);
  }
}

async function scrubTo(seq) {
  try {
    const { ok, body } = await getJson(`/frame?seq=${seq}`);
    if (ok) show(body, false);
    else say(body.error, true);
  } catch (err) {
    say("the cluster's page server does not answer", true);
  }
}

// ---- drawing a frame --------------------------------------------------------------------------

function show(frame, live) {
  state.frame = frame;
  state.receivedAt = performance.now();
  if (live) {
    state.newestSeq = frame.seq;
    state.newestMillis = frame.epoch_millis;
    state.oldestSeq = frame.oldest_seq;
  }
  if (state.builtFor !== frame.nodes.length) build(frame.nodes.length);
  drawNodes(frame);
  drawLogs(frame);
  drawControls(frame);
  drawTimeline(frame);
  if ($("submit-command").placeholder !== frame.submit_hint) {
    $("submit-command").placeholder = frame.submit_hint;
  }
  if (frame.title && document.title !== frame.title) {
    document.title = frame.title;
    $("title").textContent = frame.title;
  }
  const leader = $("leader");
  leader.dataset.leader = frame.leader === null ? "" : String(frame.leader);
  leader.textContent = frame.leader === null ? "no leader"
    : `leader: ${frame.noun} ${frame.leader}, term ${frame.nodes[frame.leader].status.term}`;
}

function build(count) {
  const links = $("links"), nodes = $("nodes"), controls = $("controls").tBodies[0];
  links.replaceChildren();
  nodes.replaceChildren();
  controls.replaceChildren();
  for (let a = 0; a < count; a++) {
    for (let b = a + 1; b < count; b++) {
      const p = nodePosition(a, count), q = nodePosition(b, count);
      svg("line", { x1: p.x, y1: p.y, x2: q.x, y2: q.y, "data-a": a, "data-b": b }, links);
    }
  }
  for (let id = 0; id < count; id++) {
    const { x, y } = nodePosition(id, count);
    const group = svg("g", { class: "node", "data-id": id, transform: `translate(${x},${y})` },
                      nodes);
    svg("circle", { class: "timer", r: NODE_RADIUS + 6, transform: "rotate(-90)" }, group);
    svg("circle", { class: "body", r: NODE_RADIUS }, group);
    svg("text", { class: "name", y: -14 }, group).textContent = `S${id}`;
    svg("text", { class: "term", y: 4 }, group);
    svg("text", { class: "vote", y: 20 }, group);
    svg("text", { class: "badge", y: NODE_RADIUS + 22 }, group);
    const row = controls.insertRow();
    row.dataset.id = id;
    row.insertCell().textContent = `S${id}`;
    row.insertCell().className = "process";
    const buttons = row.insertCell();
    for (const action of ACTIONS) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = action;
      button.dataset.node = id;
      button.dataset.action = action;
      button.addEventListener("click", () => post(`/node/${id}/${action}`));
      buttons.appendChild(button);
    }
  }
  state.builtFor = count;
}

function nodeLook(node) {
  if (node.process === "killed") return { role: "killed", badge: "killed" };
  const role = node.status ? node.status.role : "unknown";
  const badges = [];
  if (node.process === "paused") badges.push("paused");
  if (node.cut_off) badges.push("cut off");
  if (!node.answering && node.process !== "paused") badges.push("not answering");
  return { role, badge: badges.join(", ") };
}

function drawNodes(frame) {
  const count = frame.nodes.length;
  for (const node of frame.nodes) {
    const group = document.querySelector(`#nodes g.node[data-id="${node.id}"]`);
    const { role, badge } = nodeLook(node);
    group.setAttribute("class", ["node", role, node.process === "paused" ? "paused" : "",
      node.cut_off ? "cut" : "", node.answering ? "" : "silent"].join(" ").trim());
    group.dataset.role = role;
    group.dataset.process = node.process;
    group.dataset.cutOff = String(node.cut_off);
    group.dataset.answering = String(node.answering);
    const status = node.status;
    group.dataset.term = status ? status.term : "";
    group.querySelector(".term").textContent = status ? `term ${status.term}` : "";
    group.querySelector(".vote").textContent =
      status && status.voted_for !== null ? `voted S${status.voted_for}` : "";
    group.querySelector(".badge").textContent = badge;
    const timer = group.querySelector(".timer");
    const left = status && status.election_millis_left !== null && node.answering
      ? Math.max(0, Math.min(1, status.election_millis_left / TIMER_FULL_MILLIS)) : 0;
    const circumference = 2 * Math.PI * (NODE_RADIUS + 6);
    timer.setAttribute("stroke-dasharray", `${left * circumference} ${circumference}`);
  }
  for (const line of document.querySelectorAll("#links line")) {
    const a = frame.nodes[Number(line.dataset.a)], b = frame.nodes[Number(line.dataset.b)];
    line.setAttribute("class", a.cut_off || b.cut_off ? "cut" : "");
  }
  if (count !== state.builtFor) build(count);
}

function drawLogs(frame) {
  const logs = $("logs");
  const known = frame.nodes.filter((node) => node.status);
  const end = Math.max(0, ...known.map((node) => node.status.last_index));
  const start = Math.max(1, end - LOG_CELLS + 1);
  const rows = [];
  for (const node of frame.nodes) {
    const row = document.createElement("div");
    row.className = `log-row ${node.process === "killed" ? "killed" : ""}`;
    row.dataset.id = node.id;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = `S${node.id} ${nodeLook(node).role}`;
    row.appendChild(who);
    const cells = document.createElement("span");
    cells.className = "cells";
    row.appendChild(cells);
    const status = node.status;
    if (status) {
      row.dataset.commitIndex = status.commit_index;
      row.dataset.lastIndex = status.last_index;
      if (start > 1 || status.snapshot_index > 0) {
        const hidden = document.createElement("span");
        hidden.className = "cell snapshot";
        hidden.textContent = status.snapshot_index > 0 ? `snap ${status.snapshot_index}` : "...";
        cells.appendChild(hidden);
      }
      for (let index = start; index <= Math.min(status.last_index, end); index++) {
        const cell = document.createElement("span");
        const term = index >= status.log_terms_from
          ? status.log_terms[index - status.log_terms_from] : null;
        const classes = ["cell"];
        if (index <= status.commit_index) classes.push("committed");
        if (index === status.commit_index) classes.push("commit-mark");
        cell.className = classes.join(" ");
        cell.title = `index ${index}, term ${term === null ? "?" : term}`;
        if (term !== null) {
          cell.style.background = termColour(term);
          cell.textContent = term;
        }
        cells.appendChild(cell);
      }
      const indices = document.createElement("span");
      indices.className = "indices";
      let text = `commit ${status.commit_index}, last ${status.last_index}`;
      if (status.role === "leader" && status.next_index.length) {
        const followers = status.next_index.map((next, peer) => peer === node.id ? null
          : `S${peer} next ${next} match ${status.match_index[peer]}`).filter(Boolean);
        text += ` | ${followers.join(", ")}`;
      }
      indices.textContent = text;
      row.appendChild(indices);
    } else {
      row.dataset.commitIndex = "";
      row.dataset.lastIndex = "";
    }
    rows.push(row);
  }
  logs.replaceChildren(...rows);
}

function drawControls(frame) {
  for (const node of frame.nodes) {
    const row = document.querySelector(`#controls tr[data-id="${node.id}"]`);
    const process = node.process === "killed" ? "killed" : node.process === "paused" ? "paused"
      : node.cut_off ? "cut off" : "alive";
    row.querySelector(".process").textContent = process + (node.pid ? ` (pid ${node.pid})` : "");
    const fits = {
      kill: node.process !== "killed", restart: node.process === "killed",
      pause: node.process === "alive", resume: node.process === "paused",
      cut: node.process === "alive" && !node.cut_off, heal: node.process === "alive" && node.cut_off,
    };
    for (const button of row.querySelectorAll("button")) {
      button.disabled = !state.live || !fits[button.dataset.action];
    }
  }
}

function drawTimeline(frame) {
  const scrubber = $("scrubber");
  scrubber.min = state.oldestSeq;
  scrubber.max = state.newestSeq;
  if (state.live) scrubber.value = frame.seq;
  $("live-button").textContent = state.live ? "pause" : "live";
  $("when").textContent = state.live ? "live"
    : `${((frame.epoch_millis - state.newestMillis) / 1000).toFixed(1)} s`;
}

// ---- messages in flight, on every animation frame -------------------------------------------

function drawMessages() {
  const frame = state.frame;
  const layer = $("messages");
  const shapes = [];
  if (frame) {
    const elapsed = state.live ? performance.now() - state.receivedAt : 0;
    const now = frame.epoch_millis + elapsed - MESSAGE_DELAY_MILLIS;
    const count = frame.nodes.length;
    for (const event of frame.events) {
      const age = now - event.epoch_millis;
      if (event.to === null || event.to === undefined || event.to >= count) continue;
      const from = nodePosition(event.from, count), to = nodePosition(event.to, count);
      const kind = RPC_CLASS[event.rpc] || "ae";
      if (event.kind === "lost") {
        if (age < 0 || age > LOST_MILLIS) continue;
        const cross = svg("text", { class: "msg lost", x: (from.x + to.x) / 2,
                                    y: (from.y + to.y) / 2 + 5 });
        cross.textContent = "\u00d7";
        shapes.push(cross);
        continue;
      }
      if (age < 0 || age > TRAVEL_MILLIS) continue;
      const progress = age / TRAVEL_MILLIS;
      // a call goes from the reporting node to its peer; the reply comes back
      const [a, b] = event.kind === "call" ? [from, to] : [to, from];
      // from rim to rim, not centre to centre: the dots stay off the nodes' text
      const length = Math.hypot(b.x - a.x, b.y - a.y) || 1;
      const along = NODE_RADIUS + (length - 2 * NODE_RADIUS) * progress;
      const x = a.x + ((b.x - a.x) * along) / length, y = a.y + ((b.y - a.y) * along) / length;
      const classes = ["msg", kind];
      if (event.kind === "reply") {
        classes.push("reply");
        if (event.ok === false) classes.push("no");
      }
      const big = event.entries > 0 || event.rpc !== "AppendEntries";
      shapes.push(svg("circle", { class: classes.join(" "), cx: x, cy: y, r: big ? 7 : 4.5 }));
      if (event.kind === "call" && event.entries > 0) {
        const label = svg("text", { class: "msg-label", x: x, y: y - 10 });
        label.textContent = `${event.entries}`;
        shapes.push(label);
      }
    }
  }
  layer.replaceChildren(...shapes);
  requestAnimationFrame(drawMessages);
}

// ---- wiring ------------------------------------------------------------------------------------

$("submit-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const command = $("submit-command").value;
  if (!command.trim()) {
    say("type a command first", true);
    return;
  }
  say(`submitting ${JSON.stringify(command)} ...`, false);
  post("/submit", { command });
});

$("live-button").addEventListener("click", () => {
  state.live = !state.live;
  if (state.frame) drawTimeline(state.frame);
  if (state.frame) drawControls(state.frame);
});

$("scrubber").addEventListener("input", () => {
  state.live = false;
  scrubTo(Number($("scrubber").value));
});

poll();
requestAnimationFrame(drawMessages);
