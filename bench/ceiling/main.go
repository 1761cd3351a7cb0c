// Command ceiling measures what this machine allows a first sync at most: a plain
// net/http client, WORKERS requests at a time over keep-alive connections, against a
// server in another process that only waits out the contract servers' latency (the
// same internal/contract wait) and answers a small JSON body. Neither side does any of
// idsync's or the contract servers' work, so the rate it prints bounds from above what
// bench/run.sh's first sync can reach on the same machine, latency and concurrency.
//
//	go run ./bench/ceiling -requests 30000 -workers 16 -latency 2ms -runs 3
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/idsync/idsync/internal/contract"
)

func main() {
	requests := flag.Int("requests", 30000, "requests per run")
	workers := flag.Int("workers", 16, "requests in flight")
	latency := flag.Duration("latency", 2*time.Millisecond, "the server's latency")
	runs := flag.Int("runs", 3, "runs; the median is printed last")
	url := flag.String("url", "", "GET this URL rather than start a server: a contract server's, say")
	auth := flag.String("authorization", "", "the Authorization header to send with -url")
	flag.Parse()
	if v := os.Getenv(serveEnv); v != "" {
		serveFor(v)
		return
	}
	if *url == "" {
		u, stop, err := startServer(*latency)
		if err != nil {
			log.Fatal(err)
		}
		defer stop()
		*url = u
	}
	var rates []float64
	for i := range *runs {
		d, user, sys, err := client(*url, *auth, *requests, *workers)
		if err != nil {
			log.Fatal(err)
		}
		rate := float64(*requests) / d.Seconds()
		rates = append(rates, rate)
		fmt.Printf("run %d/%d: %d requests in %.3f s, %.0f req/s; client CPU %.3f ms per request\n",
			i+1, *runs, *requests, d.Seconds(), rate, float64((user+sys).Microseconds())/1000/float64(*requests))
	}
	slices.Sort(rates)
	fmt.Printf("ceiling: %.0f req/s, median of %d runs (%d in flight, %v latency, %d cores); bound %.0f req/s\n",
		rates[(len(rates)-1)/2], *runs, *workers, *latency, runtime.NumCPU(), float64(*workers)/latency.Seconds())
}

// serveEnv, set to a latency, makes the command the server: startServer starts the
// command's own binary again with it.
const serveEnv = "CEILING_SERVE"

func serveFor(latency string) {
	d, err := time.ParseDuration(latency)
	if err != nil {
		log.Fatalf("%s=%q: %v", serveEnv, latency, err)
	}
	server(d)
}

// server answers every request after the latency, as the contract servers do.
func server(latency time.Duration) {
	var t contract.Traffic
	t.SetLatency(latency)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !t.Arrive(r, "any") {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"success","ref":"8abc"}`)
	})
	log.Fatal(http.Serve(ln, h))
}

// startServer starts this command again as the server, and returns its URL.
func startServer(latency time.Duration) (string, func(), error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"="+latency.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("the server did not start: %w", err)
	}
	return "http://" + strings.TrimSpace(addr) + "/", stop, nil
}

// client sends n requests, workers at a time, and returns how long they took and the
// CPU time this process spent meanwhile.
func client(url, auth string, n, workers int) (time.Duration, time.Duration, time.Duration, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers
	c := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	body := []byte(`{"name":"Ada Lovelace","email":"ada@example.org"}`)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	u0, s0 := cpu()
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if auth != "" {
					req.Method, req.Body, req.ContentLength = http.MethodGet, nil, 0
					req.Header.Set("Authorization", auth)
				}
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	u1, s1 := cpu()
	close(errs)
	return d, u1 - u0, s1 - s0, <-errs
}

func cpu() (user, sys time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
