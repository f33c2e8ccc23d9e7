// The app the real-kind tier deploys: an HTTP server that answers / and /healthz with its
// version, so a test can tell which image served a request, and every other path with 404 (a
// readiness probe on a wrong path fails, as it would for a real app).
//
//	VERSION  what it answers with (set in the image's config; one binary serves every version)
//	PORT     where it listens (default 8080)
//
// Test infrastructure only, built by scripts/testcluster kind-image.
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	version := os.Getenv("VERSION")
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "demo-app %s\n", version)
	})
	fmt.Printf("demo-app %s listening on :%s\n", version, port)
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
