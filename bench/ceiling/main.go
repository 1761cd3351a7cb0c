// Command ceiling measures what this machine allows a first sync at most: a plain
// net/http client, WORKERS requests at a time over keep-alive connections, against a
// server in another process that only waits out the contract servers' latency (the
// same internal/contract wait) and answers a small JSON body. Neither side does any of
// idsync's or the contract servers' work, so the rate it prints bounds from above what
// bench/run.sh's first sync can reach on the same machine, latency and concurrency.
//
//	go run ./bench/ceiling -requests 30000 -workers 16 -latency 2ms -runs 3
//
// With -haplo, the server is the Haplo contract server (sinks/haplo/haplotest) with
// the same latency, and the client asks it for a user that does not exist: its
// cheapest endpoint, the bound its own HTTP handling sets.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
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
	haplosink "github.com/idsync/idsync/sinks/haplo"
	"github.com/idsync/idsync/sinks/haplo/haplotest"
)

func main() {
	requests := flag.Int("requests", 30000, "requests per run")
	workers := flag.Int("workers", 16, "requests in flight")
	latency := flag.Duration("latency", 2*time.Millisecond, "the server's latency")
	runs := flag.Int("runs", 3, "runs; the median is printed last")
	url := flag.String("url", "", "GET this URL rather than start a server")
	auth := flag.String("authorization", "", "the Authorization header to send with -url")
	haplo := flag.Bool("haplo", false, "start the Haplo contract server, and GET a user that does not exist")
	flag.Parse()
	if v := os.Getenv(serveEnv); v != "" {
		serveFor(v)
		return
	}
	if *url == "" {
		u, stop, err := startServer(*latency, *haplo)
		if err != nil {
			log.Fatal(err)
		}
		defer stop()
		*url = u
		if *haplo {
			*url += "api/v0-user/id/1"
			*auth = "Basic " + base64.StdEncoding.EncodeToString([]byte("haplo:"+haploKey))
		}
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

// serveEnv, set to a latency (and ",haplo" for the Haplo contract server), makes the
// command the server: startServer starts the command's own binary again with it.
const serveEnv = "CEILING_SERVE"

// haploKey is the contract server's users API key.
const haploKey = "user-key-0123456789abcdef"

func serveFor(v string) {
	latency, which, _ := strings.Cut(v, ",")
	d, err := time.ParseDuration(latency)
	if err != nil {
		log.Fatalf("%s=%q: %v", serveEnv, v, err)
	}
	if which == "haplo" {
		serveHaplo(d)
		return
	}
	server(d)
}

// serveHaplo serves the Haplo contract server with the latency.
func serveHaplo(latency time.Duration) {
	srv, err := haplotest.New(haplotest.Options{ControlFile: haplosink.ControlFile, UserAPIKey: haploKey})
	if err != nil {
		log.Fatal(err)
	}
	srv.SetLatency(latency)
	serve(srv.Handler())
}

// server answers every request after the latency, as the contract servers do.
func server(latency time.Duration) {
	var t contract.Traffic
	t.SetLatency(latency)
	serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !t.Arrive(r, "any") {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"success","ref":"8abc"}`)
	}))
}

// serve serves h on a loopback port, which it prints first for startServer.
func serve(h http.Handler) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	log.Fatal(http.Serve(ln, h))
}

// startServer starts this command again as the server, and returns its URL.
func startServer(latency time.Duration, haplo bool) (string, func(), error) {
	v := latency.String()
	if haplo {
		v += ",haplo"
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"="+v)
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
// CPU time this process spent meanwhile. Without auth, each is a POST of a person, as
// a create would be; with auth (another server's URL), a GET with those credentials.
func client(url, auth string, n, workers int) (time.Duration, time.Duration, time.Duration, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers
	c := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	body := []byte(`{"name":"Ada Lovelace","email":"ada@example.org"}`)
	newRequest := func() *http.Request {
		if auth != "" {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", auth)
			return req
		}
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return req
	}
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
				resp, err := c.Do(newRequest())
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
