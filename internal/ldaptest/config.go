package ldaptest

import (
	"bytes"
	"fmt"
	"github.com/idsync/idsync/internal/testpki"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// config renders slapd.conf (the old flat format: one file, nothing to load with
// ldapadd before the server is usable).
type config struct {
	suffix, rootDN, rootPW, serviceDN string
	dir                               string
	overlays                          []string
	sizeLimit                         int
	tls                               *testpki.Files
}

func (c config) path() string { return filepath.Join(c.dir, "slapd.conf") }

// Where Debian (and, failing that, other distributions) keep OpenLDAP's schema files and
// modules.
var (
	schemaDirs = []string{"/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema"}
	moduleDirs = []string{"/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap", "/usr/local/libexec/openldap"}
)

func (c config) write() error {
	schemaDir := firstWith(schemaDirs, "core.schema")
	if schemaDir == "" {
		return fmt.Errorf("no core.schema in %s: is slapd installed? (apt-get install slapd ldap-utils)", strings.Join(schemaDirs, ", "))
	}
	moduleDir := firstWith(moduleDirs, "back_mdb.la", "back_mdb.so")

	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	for _, s := range []string{"core", "cosine", "inetorgperson", "nis"} {
		w("include %q", filepath.Join(schemaDir, s+".schema"))
	}
	ppolicy := slices.Contains(c.overlays, OverlayPPolicy)
	if ppolicy {
		// OpenLDAP 2.4 ships the schema as a file; 2.5 and later build it into the module.
		if f := filepath.Join(schemaDir, "ppolicy.schema"); exists(f) {
			w("include %q", f)
		}
	}
	w("pidfile %q", filepath.Join(c.dir, "slapd.pid"))
	w("argsfile %q", filepath.Join(c.dir, "slapd.args"))
	if moduleDir != "" { // else assume a slapd with back_mdb built in
		w("modulepath %q", moduleDir)
		w("moduleload back_mdb")
		for _, o := range c.overlays {
			w("moduleload %s", o)
		}
	}
	if c.tls != nil {
		w("TLSCACertificateFile %q", c.tls.CAFile)
		w("TLSCertificateFile %q", c.tls.CertFile)
		w("TLSCertificateKeyFile %q", c.tls.KeyFile)
	}

	w("")
	w("database mdb")
	w("maxsize %d", 1<<30) // a map size, not an allocation: 100,000 people take ~140 MiB
	w("suffix %q", c.suffix)
	w("rootdn %q", c.rootDN)
	w("rootpw %s", c.rootPW)
	w("directory %q", filepath.Join(c.dir, "db"))
	w("index objectClass,uid,mail,entryUUID,member eq")
	if c.sizeLimit > 0 {
		// Like Active Directory's MaxPageSize: plain searches stop at the limit with
		// sizeLimitExceeded, paged searches get everything in the end. Not like it: pages
		// are as large as the client asks (AD would cap them at the limit; slapd's size.pr
		// can only refuse a larger page with adminLimitExceeded, which AD never does).
		// The rootdn is never limited.
		w("sizelimit size.soft=%d size.hard=%[1]d size.prtotal=unlimited", c.sizeLimit)
	} else {
		w("sizelimit unlimited") // slapd's default is 500, paged results included
	}
	w("access to attrs=userPassword")
	w("  by anonymous auth")
	w("  by * none")
	w("access to *")
	w("  by dn.exact=%q read", c.serviceDN)
	w("  by * none")
	if slices.Contains(c.overlays, OverlayMemberOf) {
		w("overlay memberof")
		w("memberof-refint TRUE")
	}
	if ppolicy {
		w("overlay ppolicy")
		w("ppolicy_default %q", policyDN(c.suffix))
	}

	if err := os.MkdirAll(filepath.Join(c.dir, "db"), 0o700); err != nil {
		return err
	}
	return os.WriteFile(c.path(), b.Bytes(), 0o600)
}

// firstWith returns the first directory that holds one of the files.
func firstWith(dirs []string, files ...string) string {
	for _, d := range dirs {
		for _, f := range files {
			if exists(filepath.Join(d, f)) {
				return d
			}
		}
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
