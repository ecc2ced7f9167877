// The demo's drawing editors (foleycrafter/demo.py loads this into the page's head).
//
// Each editor is a canvas inside an empty gr.HTML block and keeps a text field as the one source of
// truth: what is drawn is read from the field, and every edit is written back to it as text, with
// an `input` event, so the server sees exactly what a visitor could have typed (and checks it the
// same way). Fields changed by the server (a reference's or the predictor's curve) are redrawn.
//
//   loudness: #loudness-editor edits #loudness-points ("seconds:dB, ..."): drag a point to move it,
//             click to add one, double-click one to remove it, or press and draw a stretch of the
//             curve freehand (it replaces the points under it). Time runs over the input video's
//             duration, levels from -80 to 0 dBFS.
//   region:   #region-editor shows the input video's current frame and edits #region ("x0,y0,x1,y1",
//             fractions of the width and height): drag a box; a click without a drag clears it.
(() => {
  const DB_MIN = -80;
  const DB_MAX = 0;
  const GRAB_PX = 9; // how near (CSS pixels) a press must be to a point to move it
  const DRAW_STEP_PX = 12; // a freehand stroke keeps one point per this many pixels of time
  const PAD = { left: 42, right: 10, top: 10, bottom: 24 };

  function field(id) {
    return document.querySelector(`#${id} textarea, #${id} input`);
  }

  function setField(input, text) {
    input.value = text;
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function videoElement() {
    return document.querySelector("#input-video video");
  }

  function videoDuration(points) {
    const video = videoElement();
    if (video && isFinite(video.duration) && video.duration > 0) return video.duration;
    const last = points.length ? points[points.length - 1][0] : 0;
    return Math.max(last, 1);
  }

  function ensureCanvas(id, height) {
    const host = document.getElementById(id);
    if (!host) return null;
    let canvas = host.querySelector("canvas");
    if (!canvas) {
      canvas = document.createElement("canvas");
      canvas.style.width = "100%";
      canvas.style.height = `${height}px`;
      canvas.style.touchAction = "none";
      canvas.style.cursor = "crosshair";
      canvas.dataset.editor = id;
      host.appendChild(canvas);
    }
    const width = Math.max(200, Math.round(canvas.clientWidth || host.clientWidth || 600));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    return canvas;
  }

  function pointer(canvas, event) {
    const box = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * canvas.width) / box.width,
      y: ((event.clientY - box.top) * canvas.height) / box.height,
    };
  }

  // -- loudness --------------------------------------------------------------------------------
  function parsePoints(text) {
    const points = [];
    for (const part of (text || "").split(",")) {
      const pair = part.trim().split(":");
      if (pair.length !== 2) continue;
      const t = parseFloat(pair[0]);
      const db = parseFloat(pair[1]);
      if (isFinite(t) && isFinite(db)) points.push([t, db]);
    }
    return points.sort((a, b) => a[0] - b[0]);
  }

  function formatPoints(points) {
    return points.map(([t, db]) => `${+t.toFixed(2)}:${+db.toFixed(1)}`).join(", ");
  }

  const loudness = { text: null, points: [], drag: null, stroke: null, moved: false };

  function loudnessAxes(canvas, duration) {
    const w = canvas.width - PAD.left - PAD.right;
    const h = canvas.height - PAD.top - PAD.bottom;
    return {
      x: (t) => PAD.left + (Math.min(Math.max(t, 0), duration) / duration) * w,
      y: (db) => PAD.top + ((DB_MAX - Math.min(Math.max(db, DB_MIN), DB_MAX)) / (DB_MAX - DB_MIN)) * h,
      t: (x) => Math.min(Math.max(((x - PAD.left) / w) * duration, 0), duration),
      db: (y) => Math.min(Math.max(DB_MAX - ((y - PAD.top) / h) * (DB_MAX - DB_MIN), DB_MIN), DB_MAX),
    };
  }

  function drawLoudness(canvas, duration) {
    const ctx = canvas.getContext("2d");
    const axes = loudnessAxes(canvas, duration);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.font = "11px sans-serif";
    ctx.fillStyle = "#666";
    ctx.strokeStyle = "#ddd";
    ctx.lineWidth = 1;
    for (let db = DB_MIN; db <= DB_MAX; db += 20) {
      ctx.beginPath();
      ctx.moveTo(PAD.left, axes.y(db));
      ctx.lineTo(canvas.width - PAD.right, axes.y(db));
      ctx.stroke();
      ctx.fillText(`${db} dB`, 2, axes.y(db) + 4);
    }
    const step = duration > 20 ? 5 : duration > 8 ? 2 : duration > 3 ? 1 : 0.5;
    for (let t = 0; t <= duration + 1e-9; t += step) {
      ctx.fillText(`${+t.toFixed(1)} s`, axes.x(t) - 8, canvas.height - 6);
    }
    const points = loudness.stroke ? loudness.stroke : loudness.points;
    if (!points.length) {
      ctx.fillText("Draw the loudness here (press and drag), or click to add points.", PAD.left + 8, PAD.top + 16);
      return;
    }
    ctx.strokeStyle = "#d62728";
    ctx.lineWidth = 2;
    ctx.beginPath();
    // Before the first point and after the last, the curve holds its level.
    ctx.moveTo(axes.x(0), axes.y(points[0][1]));
    for (const [t, db] of points) ctx.lineTo(axes.x(t), axes.y(db));
    ctx.lineTo(axes.x(duration), axes.y(points[points.length - 1][1]));
    ctx.stroke();
    if (loudness.stroke) return;
    ctx.fillStyle = "#d62728";
    for (const [t, db] of points) {
      ctx.beginPath();
      ctx.arc(axes.x(t), axes.y(db), 4, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  function nearestPoint(axes, at) {
    let best = -1;
    let distance = Infinity;
    loudness.points.forEach(([t, db], i) => {
      const d = Math.hypot(axes.x(t) - at.x, axes.y(db) - at.y);
      if (d < distance) {
        best = i;
        distance = d;
      }
    });
    return distance <= GRAB_PX * (window.devicePixelRatio || 1) + 2 ? best : -1;
  }

  function commitLoudness(input) {
    const text = formatPoints(loudness.points);
    loudness.text = text;
    setField(input, text);
  }

  function setUpLoudness() {
    const input = field("loudness-points");
    const canvas = ensureCanvas("loudness-editor", 200);
    if (!input || !canvas) return;
    if (input.value !== loudness.text && !loudness.drag && !loudness.stroke) {
      loudness.text = input.value;
      loudness.points = parsePoints(input.value);
    }
    const duration = videoDuration(loudness.points);
    drawLoudness(canvas, duration);
    if (canvas.dataset.ready) return;
    canvas.dataset.ready = "1";
    canvas.addEventListener("pointerdown", (event) => {
      const axes = loudnessAxes(canvas, videoDuration(loudness.points));
      const at = pointer(canvas, event);
      canvas.setPointerCapture(event.pointerId);
      loudness.moved = false;
      const index = nearestPoint(axes, at);
      if (index >= 0) {
        loudness.drag = index;
      } else {
        loudness.stroke = [[axes.t(at.x), axes.db(at.y)]];
        loudness.strokeX = at.x;
      }
    });
    canvas.addEventListener("pointermove", (event) => {
      if (loudness.drag === null && !loudness.stroke) return;
      const duration = videoDuration(loudness.points);
      const axes = loudnessAxes(canvas, duration);
      const at = pointer(canvas, event);
      loudness.moved = true;
      if (loudness.drag !== null) {
        const i = loudness.drag;
        const before = i > 0 ? loudness.points[i - 1][0] + 0.01 : 0;
        const after = i < loudness.points.length - 1 ? loudness.points[i + 1][0] - 0.01 : duration;
        loudness.points[i] = [Math.min(Math.max(axes.t(at.x), before), after), axes.db(at.y)];
      } else if (Math.abs(at.x - loudness.strokeX) >= DRAW_STEP_PX) {
        loudness.stroke.push([axes.t(at.x), axes.db(at.y)]);
        loudness.strokeX = at.x;
      }
      drawLoudness(canvas, duration);
    });
    const finish = (event) => {
      const duration = videoDuration(loudness.points);
      const axes = loudnessAxes(canvas, duration);
      if (loudness.drag !== null) {
        loudness.drag = null;
        if (loudness.moved) commitLoudness(input);
      } else if (loudness.stroke) {
        const stroke = loudness.stroke;
        loudness.stroke = null;
        if (!loudness.moved || stroke.length < 2) {
          // A click: one point there.
          const at = pointer(canvas, event);
          loudness.points.push([axes.t(at.x), axes.db(at.y)]);
        } else {
          const drawn = stroke.sort((a, b) => a[0] - b[0]);
          const start = drawn[0][0];
          const end = drawn[drawn.length - 1][0];
          loudness.points = loudness.points.filter(([t]) => t < start || t > end).concat(drawn);
        }
        loudness.points.sort((a, b) => a[0] - b[0]);
        commitLoudness(input);
      }
      drawLoudness(canvas, duration);
    };
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
    canvas.addEventListener("dblclick", (event) => {
      const axes = loudnessAxes(canvas, videoDuration(loudness.points));
      // The double click's own clicks added points next to it: remove those and the one it hit.
      const at = pointer(canvas, event);
      const index = nearestPoint(axes, at);
      if (index < 0) return;
      loudness.points.splice(index, 1);
      let again = nearestPoint(axes, at);
      while (again >= 0) {
        loudness.points.splice(again, 1);
        again = nearestPoint(axes, at);
      }
      commitLoudness(input);
      drawLoudness(canvas, videoDuration(loudness.points));
    });
  }

  // -- region ----------------------------------------------------------------------------------
  const region = { text: null, box: null, drag: null };

  function parseBox(text) {
    const values = (text || "").split(",").map((v) => parseFloat(v));
    return values.length === 4 && values.every(isFinite) ? values : null;
  }

  function frameArea(canvas, video) {
    // The frame fitted into the canvas, keeping its aspect ratio.
    const vw = video && video.videoWidth ? video.videoWidth : 16;
    const vh = video && video.videoHeight ? video.videoHeight : 9;
    const scale = Math.min(canvas.width / vw, canvas.height / vh);
    const w = vw * scale;
    const h = vh * scale;
    return { x: (canvas.width - w) / 2, y: (canvas.height - h) / 2, w, h };
  }

  function drawRegion(canvas) {
    const ctx = canvas.getContext("2d");
    const video = videoElement();
    const area = frameArea(canvas, video);
    ctx.fillStyle = "#222";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (video && video.readyState >= 2) {
      ctx.drawImage(video, area.x, area.y, area.w, area.h);
    } else {
      ctx.fillStyle = "#aaa";
      ctx.font = "12px sans-serif";
      ctx.fillText("Upload a video, then drag a box over the object that sounds.", 10, 20);
    }
    const box = region.drag || region.box;
    if (!box) return;
    const [x0, y0, x1, y1] = box;
    ctx.strokeStyle = "#ffdd00";
    ctx.lineWidth = 2;
    ctx.strokeRect(
      area.x + Math.min(x0, x1) * area.w,
      area.y + Math.min(y0, y1) * area.h,
      Math.abs(x1 - x0) * area.w,
      Math.abs(y1 - y0) * area.h
    );
  }

  function relative(canvas, event) {
    const area = frameArea(canvas, videoElement());
    const at = pointer(canvas, event);
    const clamp = (v) => Math.min(Math.max(v, 0), 1);
    return [clamp((at.x - area.x) / area.w), clamp((at.y - area.y) / area.h)];
  }

  function setUpRegion() {
    const input = field("region");
    const canvas = ensureCanvas("region-editor", 240);
    if (!input || !canvas) return;
    if (input.value !== region.text && !region.drag) {
      region.text = input.value;
      region.box = parseBox(input.value);
    }
    drawRegion(canvas);
    if (canvas.dataset.ready) return;
    canvas.dataset.ready = "1";
    canvas.addEventListener("pointerdown", (event) => {
      canvas.setPointerCapture(event.pointerId);
      const [x, y] = relative(canvas, event);
      region.drag = [x, y, x, y];
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!region.drag) return;
      const [x, y] = relative(canvas, event);
      region.drag = [region.drag[0], region.drag[1], x, y];
      drawRegion(canvas);
    });
    const finish = () => {
      if (!region.drag) return;
      const [a, b, c, d] = region.drag;
      region.drag = null;
      const round = (v) => +v.toFixed(3);
      const box = [Math.min(a, c), Math.min(b, d), Math.max(a, c), Math.max(b, d)].map(round);
      // A click without a drag clears the region (the whole picture sounds).
      region.box = box[2] - box[0] < 0.02 || box[3] - box[1] < 0.02 ? null : box;
      region.text = region.box ? region.box.join(",") : "";
      setField(input, region.text);
      drawRegion(canvas);
    };
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
  }

  // Gradio renders (and re-renders) its blocks after this script runs: keep the editors attached
  // and in step with their fields.
  setInterval(() => {
    try {
      setUpLoudness();
      setUpRegion();
    } catch (error) {
      console.error("foleycrafter editors:", error);
    }
  }, 250);
})();
