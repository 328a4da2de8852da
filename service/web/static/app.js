// Conformer page: POST /v1/conformers (format "sdf"), show each conformer in 3Dmol.js,
// step through them with their energies, download the SDF.
"use strict";

const state = { records: [], conformers: [], shown: -1, viewer: null, sdf: "", downloadUrl: null };

function $(id) { return document.getElementById(id); }

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function splitSdf(sdf) {
  return sdf.split(/^\$\$\$\$\r?\n?/m).filter((block) => block.trim().length > 0).map((b) => b + "$$$$\n");
}

function energyText(conformer) {
  const e = conformer.energy_kcal_mol;
  return e === null || e === undefined ? "energy not computed (relax: none)" : `${e.toFixed(3)} kcal/mol`;
}

function show(position) {
  const n = state.records.length;
  if (n === 0) { return; }
  state.shown = ((position % n) + n) % n;
  const viewer = state.viewer;
  viewer.clear();
  const model = viewer.addModel(state.records[state.shown], "sdf", { keepH: true });
  viewer.setStyle({}, { stick: { radius: 0.15 }, sphere: { scale: 0.22 } });
  viewer.zoomTo();
  viewer.render();
  const conformer = state.conformers[state.shown];
  $("conformer-label").textContent =
    `conformer ${state.shown + 1} / ${n} (index ${conformer.index}): ${energyText(conformer)}`;
  const el = $("viewer");
  el.dataset.shownIndex = String(state.shown);
  el.dataset.atomCount = String(model.selectedAtoms({}).length);
  document.querySelectorAll("#energies li").forEach((li, i) => li.classList.toggle("shown", i === state.shown));
}

function render(result) {
  state.sdf = result.content || "";
  state.records = splitSdf(state.sdf);
  state.conformers = result.conformers;
  if (state.downloadUrl) { URL.revokeObjectURL(state.downloadUrl); }
  state.downloadUrl = URL.createObjectURL(new Blob([state.sdf], { type: "chemical/x-mdl-sdfile" }));
  const link = $("download");
  link.href = state.downloadUrl;
  link.download = `conformers_${result.canonical_smiles.replace(/[^A-Za-z0-9]+/g, "_")}.sdf`;
  const list = $("energies");
  list.replaceChildren(...state.conformers.map((c, i) => {
    const li = document.createElement("li");
    li.textContent = energyText(c);
    li.addEventListener("click", () => show(i));
    return li;
  }));
  const dropped = Object.entries(result.dropped).map(([k, v]) => `${k}: ${v}`).join(", ") || "none";
  const removed = result.removed_fragments.length ? `; stripped ${result.removed_fragments.join(" ")}` : "";
  const warnings = (result.warnings || []).length ? `; warning: ${result.warnings.join("; ")}` : "";
  $("summary").textContent =
    `${result.num_returned} of ${result.num_requested} conformers returned (${result.num_generated} drawn); ` +
    `dropped: ${dropped}${removed}; energies: ${result.energy_model || "none"}` +
    `${result.sorted_by_energy ? ", sorted" : ""}; ` +
    `model ${result.model.name} ${result.model.version}; ${result.timings.service_total.toFixed(2)} s${warnings}`;
  $("result").hidden = false;
  if (!state.viewer) {
    state.viewer = $3Dmol.createViewer($("viewer"), { backgroundColor: "white" });
  }
  $("viewer").dataset.conformerCount = String(state.records.length);
  show(0);
}

async function generate(event) {
  event.preventDefault();
  const body = {
    smiles: $("smiles").value.trim(),
    n_conformers: Number.parseInt($("n-conformers").value, 10),
    relax: $("relax").value,
    sort: $("sort").checked,
    format: "sdf",
  };
  const windowText = $("energy-window").value.trim();
  if (windowText !== "") { body.energy_window = Number.parseFloat(windowText); }
  $("generate").disabled = true;
  setStatus("generating…", false);
  try {
    const response = await fetch("/v1/conformers", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (!response.ok) {
      const error = payload.error || {};
      setStatus(`${response.status} ${error.reason || "error"}: ${error.message || "request failed"}`, true);
      return;
    }
    if (payload.num_returned === 0) {
      setStatus("no conformer passed the checks; try more conformers", true);
      return;
    }
    render(payload);
    setStatus(`done: ${payload.num_returned} conformers`, false);
  } catch (err) {
    setStatus(`request failed: ${err}`, true);
  } finally {
    $("generate").disabled = false;
  }
}

async function loadModelName() {
  try {
    const response = await fetch("/v1/models");
    const payload = await response.json();
    const model = payload.models[0];
    $("model-name").textContent = `${model.name} ${model.version}`;
    $("n-conformers").max = String(model.limits.max_conformers);
  } catch (err) {
    $("model-name").textContent = "unknown";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("request-form").addEventListener("submit", generate);
  $("previous").addEventListener("click", () => show(state.shown - 1));
  $("next").addEventListener("click", () => show(state.shown + 1));
  loadModelName();
});
