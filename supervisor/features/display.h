/*
 * A guest's graphical console: VNC (the profile's [display]). qsupd knows
 * the address QEMU listens on (the display chosen at start for vnc-display
 * = auto, or read back with query-vnc after a re-adoption) and shows it in
 * the status ("display": "vnc://127.0.0.1:5901"). A password (password-file,
 * or password = generate, kept 0600 in the guest's run dir) is set with
 * set_password before the guest first runs: QEMU starts VNC with
 * password=on, which refuses every client until then. The password is
 * never on QEMU's command line nor in a log.
 */
#ifndef SV_DISPLAY_H
#define SV_DISPLAY_H

#include <stdbool.h>
#include <jansson.h>

struct sv_guest;
struct sv_request;

/* The display verb: args {name, password: bool}. Answers req with
 * {display: "vnc://HOST:PORT", host, port, vnc_display, auth: "none" |
 * "password-file" | "generated"} and, when password is true, the password
 * (read from its file off the loop) as "password". The caller checks that
 * the client may see it. */
void sv_display_cmd(struct sv_guest *g, struct sv_request *req, json_t *args);

/* The display's URI into buf (size bytes); false when g shows none now. */
bool sv_display_uri(struct sv_guest *g, char *buf, size_t size);

/* What the display feature hears of a guest: it sets the password before
 * cont, reads the display back after a re-adoption, adds "display" and
 * "display_auth" to the status. */
extern const struct sv_guest_observer sv_display_observer;

#endif
