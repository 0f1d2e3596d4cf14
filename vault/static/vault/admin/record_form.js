// Record admin form: keep the text-recording toggle in step with the protocol.
// The server refuses text recording on graphical protocols anyway (Record.clean());
// this only spares the user a round trip and says why the toggle is off.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const protocol = document.getElementById("id_protocol");
  const toggle = document.getElementById("id_text_recording");
  if (!protocol || !toggle || !toggle.dataset.textUnavailableReasons) return;
  const reasons = JSON.parse(toggle.dataset.textUnavailableReasons);
  const help = document.getElementById("id_text_recording_helptext");
  const update = () => {
    const reason = reasons[protocol.value];
    toggle.disabled = Boolean(reason);
    if (reason) toggle.checked = false;
    if (help) help.textContent = reason || toggle.dataset.helpDefault;
  };
  protocol.addEventListener("change", update);
  update();
});
