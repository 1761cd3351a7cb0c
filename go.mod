module github.com/idsync/idsync

go 1.26
