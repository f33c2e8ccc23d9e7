module ephemera.dev/testcluster/demo-app

go 1.24.0
