/* The floor baton is measured against: a stateless C loop that plays only the happy path
 * of a blind transfer (recvmmsg/sendmmsg, no timers, no hooks, no real parsing, no state).
 *   INVITE -> 200 OK (with a To-tag)      ACK    -> REFER built from the ACK's headers
 *   NOTIFY -> 200 OK, and after the final one (Subscription-State: terminated) a BYE
 *   responses (202, 200 to BYE)  -> nothing
 * Not an engine: it answers nothing else and retransmits nothing. perf/run.sh runs it
 * against `baton load`, pinned like baton, to show what this machine allows on the day.
 *
 *   cc -O2 -o minimal-engine minimal-engine.c && ./minimal-engine 127.0.0.1 5099
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 32
#define SIZE 4096

/* The value of header `name` (full name, at a line start) as pointer and length. */
static const char *header(const char *msg, int len, const char *name, int *vlen) {
    size_t n = strlen(name);
    const char *p = msg, *end = msg + len;
    while (p < end) {
        const char *eol = memmem(p, end - p, "\r\n", 2);
        if (!eol || eol == p) return NULL;
        if ((size_t)(eol - p) > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ') v++;
            *vlen = (int)(eol - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Appends "Name: value\r\n" for each of the named headers copied from `req`. */
static int copy(char *out, int at, const char *req, int len, const char *const *names, int count) {
    for (int i = 0; i < count; i++) {
        int vl;
        const char *v = header(req, len, names[i], &vl);
        if (v) at += sprintf(out + at, "%s: %.*s\r\n", names[i], vl, v);
    }
    return at;
}

static const char *const RESPONSE[] = {"Via", "From", "To", "Call-ID", "CSeq"};
static unsigned long seq;

/* Builds what `req` calls for into `out`; returns its length (second message in `out2`). */
static int handle(const char *req, int len, char *out, char *out2, int *len2, const char *me) {
    *len2 = 0;
    if (strncmp(req, "SIP/2.0", 7) == 0) return 0; /* 202, 200 to BYE */
    int at, vl, fl, tl, cl;
    if (strncmp(req, "INVITE ", 7) == 0) {
        at = sprintf(out, "SIP/2.0 200 OK\r\n");
        at = copy(out, at, req, len, RESPONSE, 2);
        const char *to = header(req, len, "To", &tl);
        if (!to) return 0;
        at += sprintf(out + at, "To: %.*s;tag=c%lu\r\n", tl, to, ++seq);
        at = copy(out, at, req, len, RESPONSE + 3, 2);
        return at + sprintf(out + at, "Contact: <sip:baton@%s>\r\nContent-Length: 0\r\n\r\n", me);
    }
    const char *from = header(req, len, "From", &fl), *to = header(req, len, "To", &tl);
    const char *cid = header(req, len, "Call-ID", &cl);
    if (!from || !to || !cid) return 0;
    /* A request in the dialog, from its From/To/Call-ID turned around. */
#define REQUEST(buf, method, cseq, extra)                                                        \
    sprintf(buf,                                                                                 \
            method " sip:carrier@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-c%lu\r\n" \
            "Max-Forwards: 70\r\nFrom: %.*s\r\nTo: %.*s\r\nCall-ID: %.*s\r\nCSeq: " cseq       \
            " " method "\r\nContact: <sip:baton@%s>\r\n" extra "Content-Length: 0\r\n\r\n",     \
            me, ++seq, tl, to, fl, from, cl, cid, me)
    if (strncmp(req, "ACK ", 4) == 0)
        return REQUEST(out, "REFER", "1", "Refer-To: <sip:agent@127.0.0.1>\r\n");
    if (strncmp(req, "NOTIFY ", 7) == 0) {
        at = sprintf(out, "SIP/2.0 200 OK\r\n");
        at = copy(out, at, req, len, RESPONSE, 5);
        at += sprintf(out + at, "Content-Length: 0\r\n\r\n");
        const char *state = header(req, len, "Subscription-State", &vl);
        if (state && strncmp(state, "terminated", 10) == 0) *len2 = REQUEST(out2, "BYE", "2", "");
        return at;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IP PORT\n", argv[0]);
        return 2;
    }
    char me[64];
    snprintf(me, sizeof me, "%s:%s", argv[1], argv[2]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int rcv = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("bind");
        return 1;
    }
    static char in[BATCH][SIZE], out[2 * BATCH][SIZE];
    struct sockaddr_in src[BATCH];
    struct iovec iov[BATCH], oiov[2 * BATCH];
    struct mmsghdr msgs[BATCH], outs[2 * BATCH];
    for (;;) {
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){in[i], SIZE - 1};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &src[i], .msg_namelen = sizeof src[i], .msg_iov = &iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0) continue;
        int o = 0;
        for (int i = 0; i < n; i++) {
            int len = (int)msgs[i].msg_len, len2;
            in[i][len] = 0;
            int l = handle(in[i], len, out[o], out[o + 1], &len2, me);
            for (int k = 0; k < 2; k++) {
                int bytes = k == 0 ? l : len2;
                if (bytes <= 0) continue;
                oiov[o] = (struct iovec){out[o], (size_t)bytes};
                outs[o].msg_hdr = (struct msghdr){.msg_name = &src[i], .msg_namelen = sizeof src[i], .msg_iov = &oiov[o], .msg_iovlen = 1};
                o++;
            }
        }
        if (o > 0) sendmmsg(fd, outs, o, 0);
    }
}
