package configs

import "embed"

// Toy is the toy value-generalization experiment's config templates (toy/*.toml): `msmtrain toyworld` fills in
// {dir}, the absolute path of the directory it writes the world's data to.
//
//go:embed toy/*.toml
var Toy embed.FS
