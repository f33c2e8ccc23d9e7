module ephemera.dev/testcluster/runc-wrapper

go 1.24.0
