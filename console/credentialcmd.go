package console

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/taskguard/taskguard/console/auth"
	"github.com/taskguard/taskguard/console/store"
)

// The credential lifecycle on the data directory (or --db): these work while
// the console runs, on every replica at once, since they change the shared
// database.

func userLifecycleCommands(loc *storeLocation) []*cobra.Command {
	return []*cobra.Command{
		userStateCommand(loc, "disable", "Disable a user: they cannot sign in and their tokens are revoked", true),
		userStateCommand(loc, "enable", "Enable a disabled user (revoked tokens stay revoked)", false),
		newUserDeleteCommand(loc),
		newUserPasswdCommand(loc),
		newUserUpdateCommand(loc),
	}
}

func userStateCommand(loc *storeLocation, verb, short string, disabled bool) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), loc, func(st store.Store) error {
				if _, err := auth.New(auth.Config{Store: st}).UpdateUser(cmd.Context(), args[0], auth.UserChange{Disabled: &disabled}); err != nil {
					return userErr(args[0], err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%sd user %q\n", verb, args[0])
				return nil
			})
		},
	}
}

func userErr(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q (taskguard-console user list shows them)", name)
	}
	return err
}

func newUserDeleteCommand(loc *storeLocation) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user and every token issued to them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), loc, func(st store.Store) error {
				if err := st.DeleteUser(cmd.Context(), args[0]); err != nil {
					return userErr(args[0], err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "deleted user %q and their tokens\n", args[0])
				return nil
			})
		},
	}
}

func newUserPasswdCommand(loc *storeLocation) *cobra.Command {
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a user's password (generated and printed unless --password-stdin); revokes their tokens",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			password, generated := "", false
			if passwordStdin {
				var err error
				if password, err = readPassword(cmd.InOrStdin()); err != nil {
					return err
				}
			} else {
				password, generated = auth.GeneratePassword(), true
			}
			return withStore(cmd.Context(), loc, func(st store.Store) error {
				if err := auth.New(auth.Config{Store: st}).SetPassword(cmd.Context(), args[0], password); err != nil {
					return userErr(args[0], err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "set the password of %q and revoked their tokens\n", args[0])
				if generated {
					fmt.Fprintln(cmd.OutOrStdout(), password)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	return cmd
}

func newUserUpdateCommand(loc *storeLocation) *cobra.Command {
	var (
		role     string
		families []string
	)
	cmd := &cobra.Command{
		Use:   "update NAME [--role ROLE] [--task-family F]...",
		Short: "Change a user's role or the task families an agent-role user defends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c auth.UserChange
			if cmd.Flags().Changed("role") {
				r := auth.Role(role)
				c.Role = &r
			}
			if cmd.Flags().Changed("task-family") {
				c.TaskFamilies = &families
			}
			if c.Role == nil && c.TaskFamilies == nil {
				return errors.New("nothing to change: give --role or --task-family")
			}
			return withStore(cmd.Context(), loc, func(st store.Store) error {
				u, err := auth.New(auth.Config{Store: st}).UpdateUser(cmd.Context(), args[0], c)
				if err != nil {
					return userErr(args[0], err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "user %q: role %s, task families %v\n", u.Username, u.Role, u.TaskFamilies)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "the new role")
	cmd.Flags().StringSliceVar(&families, "task-family", nil, "the task families an agent-role user defends (replaces the list; repeatable)")
	return cmd
}

func newTokenCommand(loc *storeLocation) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "List and revoke tokens, rotate agent credentials (works while the console runs)",
	}
	var subject, family string
	list := &cobra.Command{
		Use:   "list [--subject USER] [--task-family F]",
		Short: "List tokens (never their values): ID, subject, role, family, created, expires, revoked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), loc, func(st store.Store) error {
				toks, err := st.Tokens(cmd.Context(), store.TokenQuery{Subject: subject, TaskFamily: family})
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSUBJECT\tROLE\tTASK FAMILY\tCREATED\tEXPIRES\tREVOKED")
				for _, t := range toks {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", auth.TokenID(t.Digest), t.Subject, t.Role, dash(t.TaskFamily),
						stamp(t.CreatedAt, "-"), stamp(t.ExpiresAt, "never"), stamp(t.RevokedAt, "-"))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&subject, "subject", "", "only the tokens of this user (or agent:<family>)")
	list.Flags().StringVar(&family, "task-family", "", "only the agent credentials of this task family")

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token by the ID token list shows; whoever holds it is refused at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), loc, func(st store.Store) error {
				err := auth.New(auth.Config{Store: st}).RevokeToken(cmd.Context(), args[0], "")
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no token %s (taskguard-console token list shows them)", args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "revoked token %s\n", args[0])
				return nil
			})
		},
	}

	var (
		overlap  time.Duration
		agentTTL time.Duration
	)
	rotate := &cobra.Command{
		Use:   "rotate FAMILY",
		Short: "Mint a new agent credential for a task family; the older ones stop after --overlap",
		Long: `Mint a new agent credential for a task family and print it alone on stdout.
The family's older credentials keep working for --overlap (default 24h), then
are refused. The defender reads its credential from the task's ECS secret when
the task starts, so rotation needs no new task definition:

  NEW=$(taskguard-console token rotate shop-web --overlap 24h)
  aws secretsmanager put-secret-value --secret-id taskguard/shop-web --secret-string "$NEW"
  aws ecs update-service --cluster prod --service shop-web --force-new-deployment

Tasks started after the put-secret-value use the new credential; tasks still
running on the old one must be replaced within the overlap.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if overlap < 0 {
				return fmt.Errorf("--overlap %s: give 0 or a positive duration", overlap)
			}
			return withStore(cmd.Context(), loc, func(st store.Store) error {
				tok, older, err := auth.New(auth.Config{Store: st, AgentTokenTTL: agentTTL}).RotateAgentToken(cmd.Context(), args[0], overlap)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "new agent credential %s for %q (expires %s); %d older credential(s) stop at %s\n",
					tok.ID, args[0], stamp(tok.ExpiresAt, "never"), older, tok.OlderExpireAt.Format(time.RFC3339))
				fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
				return nil
			})
		},
	}
	rotate.Flags().DurationVar(&overlap, "overlap", auth.DefaultRotationOverlap, "how long the family's older credentials keep working")
	rotate.Flags().DurationVar(&agentTTL, "agent-token-ttl", auth.DefaultAgentTokenTTL, "lifetime of the new credential (as the console's flag; -1s: never expires)")
	cmd.AddCommand(list, revoke, rotate)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format(time.RFC3339)
}
