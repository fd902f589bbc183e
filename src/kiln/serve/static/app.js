// The try-it page: reads /v1/model, builds an input from the schema, posts to /v1/predict, then asks
// /v1/explain why and draws the answer beside the prediction (a heatmap for images, signed bars for tables);
// for a text generator, a prompt box whose completion streams in from /v1/generate.
// Plain JS, no build step. The API key (when the server asks for one) stays in memory only.
"use strict";

const state = { key: null, info: null, input: null };
const $ = (id) => document.getElementById(id);

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers);
  if (state.key) headers.Authorization = "Bearer " + state.key;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    $("auth").hidden = false;
    throw new Error("This server requires an API key.");
  }
  return response;
}

async function load() {
  let info;
  try {
    info = await (await api("/v1/model")).json();
  } catch (error) {
    $("subtitle").textContent = error.message;
    return;
  }
  state.info = info;
  document.title = "kiln: " + info.name;
  $("title").textContent = info.name;
  if (info.task === "generate") return loadGenerator(info);
  const text = info.input.kinds[0] === "text";
  const shape = info.input.image_shape ? `${info.input.image_shape.join("×")} images` : text ? `text (${info.input.features[0]})` : `${info.input.features.length} features`;
  const compressed = info.compression ? ` · compressed from ${info.compression}` : "";
  $("subtitle").textContent = `${info.task} on ${shape} · version ${info.version} · ${info.runtime} runtime${compressed}`;
  renderMetrics(info.metrics);
  renderPlots(info.artifacts);
  const area = $("input-area");
  area.replaceChildren();
  state.input = buildInput(area, info);
  $("clear").hidden = !state.input.reset;
  $("predict").disabled = false;
}

function buildInput(area, info) {
  if (info.input.kinds[0] === "text") return textBox(area, info.input.features[0]);
  const shape = info.input.image_shape;
  if (shape && shape[0] === 1 && shape[1] <= 32 && shape[2] <= 32) return drawing(area, shape, info.input.pixel_range);
  if (shape) return upload(area);
  return tableForm(area, info.input);
}

// A canvas to draw on (white ink on black, like the digits), downsampled to the model's H x W.
function drawing(area, [, height, width], range) {
  const size = 224;
  const canvas = element("canvas", { id: "canvas", width: size, height: size });
  const preview = element("canvas", { id: "preview", width, height });
  preview.style.width = "112px";
  area.append(element("div", { className: "draw" }, [canvas, element("div", {}, [preview, element("p", { className: "hint", textContent: `what the model sees (${width}×${height})` })])]));
  area.append(element("p", { className: "hint", textContent: "Draw a digit with the mouse or a finger, then Predict." }));
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  let down = false;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (size / box.width), (event.clientY - box.top) * (size / box.height)];
  };
  const reset = () => {
    ctx.fillStyle = "black";
    ctx.fillRect(0, 0, size, size);
    Object.assign(ctx, { strokeStyle: "white", lineWidth: size / 10, lineCap: "round", lineJoin: "round" });
    show();
  };
  canvas.addEventListener("pointerdown", (event) => {
    down = true;
    canvas.setPointerCapture(event.pointerId);
    ctx.beginPath();
    ctx.moveTo(...at(event));
    ctx.lineTo(...at(event));
    ctx.stroke();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!down) return;
    ctx.lineTo(...at(event));
    ctx.stroke();
  });
  const up = () => { down = false; show(); };
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);

  // Crop to the ink, centre it in a square, and average blocks of pixels into H x W cells.
  function values() {
    const pixels = ctx.getImageData(0, 0, size, size).data;
    let [top, left, bottom, right] = [size, size, -1, -1];
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
      if (pixels[(y * size + x) * 4] > 32) {
        top = Math.min(top, y); bottom = Math.max(bottom, y);
        left = Math.min(left, x); right = Math.max(right, x);
      }
    }
    const out = new Array(width * height).fill(0);
    if (bottom < 0) return out;
    const side = Math.max(bottom - top, right - left) + 1;
    const y0 = (top + bottom + 1) / 2 - side / 2, x0 = (left + right + 1) / 2 - side / 2;
    for (let r = 0; r < height; r++) for (let c = 0; c < width; c++) {
      let sum = 0, count = 0;
      for (let y = Math.floor(y0 + r * side / height); y < y0 + (r + 1) * side / height; y++) {
        for (let x = Math.floor(x0 + c * side / width); x < x0 + (c + 1) * side / width; x++) {
          count++;
          if (y >= 0 && y < size && x >= 0 && x < size) sum += pixels[(y * size + x) * 4];
        }
      }
      out[r * width + c] = count ? (sum / count / 255) * range : 0;
    }
    return out;
  }
  function show() {
    const cells = values();
    const image = preview.getContext("2d").createImageData(width, height);
    cells.forEach((v, i) => {
      const level = Math.round((v / range) * 255);
      image.data.set([level, level, level, 255], i * 4);
    });
    preview.getContext("2d").putImageData(image, 0, 0);
  }
  reset();
  return { rows: () => [values()], reset };
}

// An image file, re-encoded as PNG; the server resizes it as `kiln predict` would.
function upload(area) {
  const file = element("input", { id: "file", type: "file", accept: "image/*" });
  const img = element("img", { id: "upload-preview", alt: "" });
  area.append(file, img);
  let png = null;
  file.addEventListener("change", async () => {
    if (!file.files.length) return;
    const bitmap = await createImageBitmap(file.files[0]);
    const canvas = element("canvas", { width: bitmap.width, height: bitmap.height });
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    png = canvas.toDataURL("image/png");
    img.src = png;
  });
  return { rows: () => { if (!png) throw new Error("Choose an image file first."); return [png]; } };
}

// One field per feature, filled with a typical training value (median, most frequent category or boolean):
// a number, true/false, or one of the known categories; a category or boolean may also be missing.
// A text model reads one message: a text box.
function textBox(area, name) {
  const box = element("textarea", { id: "message", name, rows: 3, required: true, placeholder: "where is my parcel?" });
  area.append(element("label", { textContent: name, htmlFor: "message" }), box);
  return { rows: () => [box.value] };
}

function tableForm(area, input) {
  const grid = element("div", { className: "fields" });
  const typical = input.typical || {};
  const option = (value, text = value) => element("option", { value, textContent: text });
  const controls = input.features.map((name, i) => {
    const kind = input.kinds[i] || "numeric";
    let control;
    if (kind === "boolean") {
      control = element("select", {}, [option("true"), option("false"), option("missing")]);
      control.value = typical[name] === false ? "false" : "true";
    } else if (kind === "categorical") {
      const known = (input.categories[name] || []).filter((v) => v !== "<missing>");
      control = element("select", {}, [...known.map((v) => option(v)), option("", "(missing)")]);
      control.value = typical[name] ?? known[0] ?? "";
    } else {
      const value = typeof typical[name] === "number" ? String(Number(typical[name].toPrecision(6))) : "0";
      control = element("input", { type: "number", step: "any", value, required: true });
    }
    control.name = name;
    grid.append(element("label", { textContent: name, htmlFor: "f" + i }), Object.assign(control, { id: "f" + i }));
    return [name, kind, control];
  });
  area.append(grid);
  const read = ([, kind, control]) => {
    if (kind === "boolean") return control.value === "missing" ? null : control.value === "true";
    if (kind === "categorical") return control.value === "" ? null : control.value;
    return Number(control.value);
  };
  return { rows: () => [Object.fromEntries(controls.map((c) => [c[0], read(c)]))] };
}

// A text generator: a prompt box; the completion streams in as server-sent events from /v1/generate.
function loadGenerator(info) {
  $("subtitle").textContent = `text generator · context ${info.input.context} tokens (${info.input.tokenizer}) · version ${info.version}`;
  renderMetrics(info.metrics);
  renderPlots(info.artifacts);
  const prompt = element("textarea", { id: "prompt", rows: 4, placeholder: "A prompt to continue", ariaLabel: "prompt" });
  $("input-area").replaceChildren(prompt, element("pre", { id: "completion" }));
  $("predict").textContent = "Generate";
  $("predict").disabled = false;
}

async function generateText() {
  const prompt = $("prompt").value;
  const out = $("completion");
  out.textContent = prompt;
  const body = { prompt, max_tokens: Math.min(200, state.info.max_tokens), temperature: 0.8, stream: true };
  const response = await api("/v1/generate", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!response.ok) return showError((await response.json()).message || response.statusText);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const events = buffer.split("\n\n");
    buffer = events.pop();
    for (const event of events) {
      const data = event.replace(/^data: /, "");
      if (data !== "[DONE]" && JSON.parse(data).text !== undefined) out.textContent += JSON.parse(data).text;
    }
  }
}

async function predict(event) {
  event.preventDefault();
  const info = state.info;
  if (info.task === "generate") {
    $("error").hidden = true;
    $("predict").disabled = true;
    return generateText().catch((error) => showError(error.message)).finally(() => { $("predict").disabled = false; });
  }
  $("error").hidden = true;
  let body;
  try {
    body = { inputs: state.input.rows() };
  } catch (error) {
    return showError(error.message);
  }
  if (info.classes.length) body.top_k = Math.min(3, info.classes.length);
  $("predict").disabled = true;
  try {
    const response = await api("/v1/predict", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await response.json();
    if (!response.ok) return showError(data.message || response.statusText);
    render(data.predictions[0]);
    if (info.input.kinds[0] === "text") return;  // /v1/explain does not explain text models yet
    await explain(body).catch(() => { $("explanation").hidden = true; });  // the prediction stands without it
  } catch (error) {
    showError(error.message);
  } finally {
    $("predict").disabled = false;
  }
}

function render(prediction) {
  const label = $("label");
  const text = prediction.value !== undefined ? prediction.value.toPrecision(5) : prediction.label;
  label.textContent = text;
  label.dataset.label = text;
  $("prediction").hidden = false;
  const bars = Object.entries(prediction.probabilities || {}).map(([name, p]) => {
    const fill = element("div", { className: "fill" });
    fill.style.width = (100 * p).toFixed(1) + "%";
    return element("div", { className: "bar" }, [
      element("span", { textContent: name }),
      element("div", { className: "track" }, [fill]),
      element("span", { textContent: (100 * p).toFixed(1) + "%" }),
    ]);
  });
  $("bars").replaceChildren(...bars);
  const answer = $("answer");  // a served responses file: the answer, or a hand-off to a person
  answer.hidden = prediction.answer === undefined || prediction.answer === null;
  answer.textContent = prediction.handoff ? `Hand-off: ${prediction.answer}` : `Answer: ${prediction.answer}`;
}

// Integrated Gradients for the predicted class: red pixels or features speak for it, blue against it.
async function explain(body) {
  $("explanation").hidden = true;
  const response = await api("/v1/explain", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!response.ok) return;
  const row = (await response.json()).explanations[0];
  const what = state.info.classes.length ? `for ${row.target} (red) and against it (blue)` : "raising (red) and lowering (blue) the prediction";
  $("why").textContent = `Why: what spoke ${what}, by Integrated Gradients.`;
  if (Array.isArray(row.attributions)) heatmap(row.attributions);
  else reasons(row.attributions);
  $("explanation").hidden = false;
}

// A C x H x W attribution array, channels summed, on a diverging scale centred on zero.
function heatmap(chw) {
  const height = chw[0].length, width = chw[0][0].length;
  const cells = [];
  for (let r = 0; r < height; r++) for (let c = 0; c < width; c++) cells.push(chw.reduce((sum, channel) => sum + channel[r][c], 0));
  const limit = Math.max(...cells.map(Math.abs)) || 1;
  const canvas = $("heatmap");
  Object.assign(canvas, { width, height, hidden: false });
  const image = canvas.getContext("2d").createImageData(width, height);
  cells.forEach((v, i) => {
    const fade = Math.round(255 * (1 - Math.abs(v) / limit));
    image.data.set(v >= 0 ? [255, fade, fade, 255] : [fade, fade, 255, 255], i * 4);
  });
  canvas.getContext("2d").putImageData(image, 0, 0);
  $("reasons").replaceChildren();
}

// A table's five largest attributions, signed, largest first (the server sorts them by magnitude).
function reasons(attributions) {
  $("heatmap").hidden = true;
  const rows = Object.entries(attributions).slice(0, 5).map(([name, value]) => element("div", { className: "reason " + (value >= 0 ? "for" : "against") }, [
    element("span", { textContent: name }),
    element("span", { textContent: (value >= 0 ? "+" : "") + value.toPrecision(3) }),
  ]));
  $("reasons").replaceChildren(...rows);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("prediction").hidden = true;
  $("explanation").hidden = true;
}

function renderMetrics(metrics) {
  const rows = Object.entries(metrics)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => element("tr", {}, [element("td", { textContent: k }), element("td", { textContent: Number.isInteger(v) ? String(v) : v.toFixed(4) })]));
  $("metrics").replaceChildren(...rows);
}

// The plots, shown as the page loads: fetched at once (with the API key, hence blobs), curves first.
async function renderPlots(names) {
  const order = ["curves.png", "confusion_matrix.png"];
  const sorted = [...names].sort((a, b) => order.indexOf(a) - order.indexOf(b));
  const images = await Promise.all(sorted.map(async (name) => {
    const response = await api("/v1/model/" + name);
    if (!response.ok) return null;
    const img = element("img", { src: URL.createObjectURL(await response.blob()), alt: name.replace(".png", "").replace("_", " ") });
    await img.decode();
    return img;
  }));
  $("plots").replaceChildren(...images.filter(Boolean));
}

$("input-form").addEventListener("submit", predict);
$("clear").addEventListener("click", () => state.input.reset());
$("auth-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("api-key").value;
  $("auth").hidden = true;
  load();
});
load();
