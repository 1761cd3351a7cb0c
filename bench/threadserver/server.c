// threadserver: the leanest HTTP server this machine can run, to tell the machine's
// limits from Go's. One thread per connection, blocking reads and writes, no event
// loop: it reads each request (headers, and a body of Content-Length bytes), sleeps
// the latency in nanosleep, and answers a small JSON body on the same keep-alive
// connection. Used with wrk (a C load generator) and with bench/ceiling -url, it
// shows how many requests a second two processes on this machine can exchange with
// 16 in flight and 2 ms of latency when neither is written in Go (README.md,
// Performance). Not built by the tests; it needs gcc:
//
//	gcc -O2 -Wall -o /tmp/threadserver bench/threadserver/server.c -lpthread
//	/tmp/threadserver 2000 18080 &   # latency in microseconds, port on 127.0.0.1
//	wrk -c16 -t2 -d8s http://127.0.0.1:18080/
//	go run ./bench/ceiling -url http://127.0.0.1:18080/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long latency_us;

static const char response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 33\r\n\r\n"
    "{\"status\":\"success\",\"ref\":\"8abc\"}";

static void *serve(void *arg) {
  int fd = (int)(long)arg, one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char buf[16384];
  size_t have = 0;
  for (;;) {
    char *end;
    buf[have] = 0;
    while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
      if (have == sizeof buf - 1) goto out; // headers too long
      ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
      if (n <= 0) goto out;
      have += n;
      buf[have] = 0;
    }
    size_t head = end + 4 - buf, body = 0;
    char *cl = strcasestr(buf, "\r\ncontent-length:");
    if (cl != NULL && cl < end) body = strtoul(cl + 17, NULL, 10);
    if (head + body > sizeof buf - 1) goto out;
    while (have < head + body) {
      ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
      if (n <= 0) goto out;
      have += n;
    }
    if (latency_us > 0) {
      struct timespec ts = {latency_us / 1000000, (latency_us % 1000000) * 1000};
      nanosleep(&ts, NULL);
    }
    if (write(fd, response, sizeof response - 1) != (ssize_t)(sizeof response - 1)) goto out;
    memmove(buf, buf + head + body, have - head - body);
    have -= head + body;
  }
out:
  close(fd);
  return NULL;
}

int main(int argc, char **argv) {
  latency_us = argc > 1 ? atol(argv[1]) : 2000;
  int port = argc > 2 ? atoi(argv[2]) : 18080;
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 128) != 0) {
    perror("threadserver");
    return 1;
  }
  printf("127.0.0.1:%d, %ld us latency\n", port, latency_us);
  fflush(stdout);
  for (;;) {
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) continue;
    pthread_t t;
    if (pthread_create(&t, NULL, serve, (void *)(long)fd) != 0) {
      close(fd);
      continue;
    }
    pthread_detach(t);
  }
}
