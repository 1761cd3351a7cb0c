module github.com/idsync/idsync

go 1.26

require (
	github.com/google/go-cmp v0.7.0
	github.com/robfig/cron/v3 v3.0.1
	go.etcd.io/bbolt v1.5.0
	gopkg.in/yaml.v3 v3.0.1
)

require golang.org/x/sys v0.45.0 // indirect
