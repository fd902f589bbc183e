// The recommender's try-it page: pick items (or type a user), POST /v1/recommend, list the suggestions.
"use strict";
const $ = (id) => document.getElementById(id);

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

async function start() {
  const card = await (await fetch("/v1/model", { headers: headers() })).json();
  if (!card.name) { $("subtitle").textContent = card.message || "Cannot read the model card."; return; }
  $("title").textContent = `kiln: ${card.name}`;
  $("subtitle").textContent = `${card.users} users, ${card.items} items (version ${card.version}).`;
  $("k").max = card.items;
  for (const item of card.popular_items) $("items").add(new Option(item, item));
}

function headers() {
  const key = $("key").value;
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function suggest(event) {
  event.preventDefault();
  const user = $("user").value.trim();
  const k = Number($("k").value);
  const body = user ? { users: [user], k } : { items: [...$("items").selectedOptions].map((o) => o.value), k };
  const response = await fetch("/v1/recommend", {
    method: "POST", headers: { "Content-Type": "application/json", ...headers() }, body: JSON.stringify(body),
  });
  const answer = await response.json();
  $("error").hidden = response.ok;
  $("suggestions").replaceChildren();
  $("source").textContent = "";
  if (!response.ok) { $("error").textContent = answer.message; return; }
  const list = answer.recommendations[0];
  $("source").textContent = `From ${list.source.replace("_", " ")}.`;
  for (const [rank, entry] of list.items.entries()) {
    const row = $("suggestions").insertRow();
    cell(row, rank + 1);
    cell(row, entry.item);
    cell(row, entry.score.toFixed(4));
  }
}

$("form").addEventListener("submit", suggest);
start();
