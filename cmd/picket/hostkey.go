package main

import (
	"context"
	"fmt"

	"github.com/picket-agent/picket/sync/hostkey"
	"github.com/spf13/pflag"
)

func hostkeyCmd() *command {
	var principal string
	var plain bool
	return &command{
		name: "hostkey", summary: "print this host's signing key as an allowed_signers line", usage: "[--principal NAME] [--public]",
		long: `Prints the line to add to an allowed_signers file so that
'git log --show-signature hosts/<hostname>' verifies this host's commits
(git config gpg.ssh.allowedSignersFile FILE). The key (ed25519, 0600) is
created at repository.host_key on first use. Host keys sign only the host's
own branch and audit checkpoints; never add them to the config trust root.
With --public, prints the bare public key (for 'picket audit verify --pubkey').`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&principal, "principal", "", "principal for the line (default picket@<hostname>)")
			fs.BoolVar(&plain, "public", false, "print only the public key")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			boot, err := loadBootstrap(e.g.config)
			if err != nil {
				return checkErr(err)
			}
			k, _, err := hostkey.LoadOrCreate(boot.Repository.HostKey)
			if err != nil {
				return err
			}
			if plain {
				fmt.Fprintln(e.stdout, k.AuthorizedKey())
				return nil
			}
			if principal == "" {
				principal = "picket@" + boot.Hostname
			}
			fmt.Fprintln(e.stdout, k.AllowedSignersLine(principal))
			return nil
		},
	}
}
