// An OCI runtime wrapper for machines whose capability bounding set lacks CAP_SYS_RESOURCE.
//
// kind starts its node containers with --privileged, and privileged pods inside the node ask the
// node's runc for every capability; runc then fails with "unable to apply caps: operation not
// permitted", because no process here may hold CAP_SYS_RESOURCE. This wrapper removes that one
// capability from every capability set of the container's spec (the bundle's config.json for
// create/run, the --process file for exec) and then executes the real runc with the same
// arguments. Everything else in the spec is left as it is.
//
// It is test infrastructure only: scripts/testcluster kind-image registers it as dockerd's default
// runtime and as the runc BinaryName of the node image's containerd.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// realRunc is the runtime this wrapper hands over to (set with -ldflags -X main.realRunc=...).
var realRunc = "/usr/sbin/runc"

const dropped = "CAP_SYS_RESOURCE"

func main() {
	args := os.Args[1:]
	if err := rewrite(args); err != nil {
		fmt.Fprintf(os.Stderr, "runc-wrapper: %v\n", err)
		os.Exit(1)
	}
	argv := append([]string{realRunc}, args...)
	if err := syscall.Exec(realRunc, argv, os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runc-wrapper: exec %s: %v\n", realRunc, err)
		os.Exit(1)
	}
}

// rewrite finds the spec the command will read and removes the dropped capability from it.
func rewrite(args []string) error {
	command := ""
	bundle, process := "", ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case command == "" && (a == "create" || a == "run" || a == "exec"):
			command = a
		case command != "" && (a == "--bundle" || a == "-b"):
			bundle = next()
		case command != "" && len(a) > 9 && a[:9] == "--bundle=":
			bundle = a[9:]
		case command == "exec" && (a == "--process" || a == "-p"):
			process = next()
		case command == "exec" && len(a) > 10 && a[:10] == "--process=":
			process = a[10:]
		}
	}
	switch command {
	case "create", "run":
		if bundle == "" {
			bundle = "."
		}
		return edit(filepath.Join(bundle, "config.json"), func(doc map[string]any) map[string]any {
			p, _ := doc["process"].(map[string]any)
			return p
		})
	case "exec":
		if process == "" {
			return nil
		}
		return edit(process, func(doc map[string]any) map[string]any { return doc })
	}
	return nil
}

// edit removes the dropped capability from the capability sets of the process that pick returns.
func edit(path string, pick func(map[string]any) map[string]any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Contains(raw, []byte(dropped)) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep 64-bit integers (rlimits, ids) exact
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	proc := pick(doc)
	caps, _ := proc["capabilities"].(map[string]any)
	for set, list := range caps {
		items, _ := list.([]any)
		kept := make([]any, 0, len(items))
		for _, c := range items {
			if c != dropped {
				kept = append(kept, c)
			}
		}
		caps[set] = kept
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}
