// Package optim holds the optimizers and learning-rate schedules of the
// trainer.
//
// Schedules ([Schedule], built by [NewSchedule] from a [ScheduleConfig])
// follow the Hugging Face transformers conventions: LR(step) is the learning
// rate of the update that follows step completed optimizer steps, so step 0
// is the first update and, with warmup, uses a learning rate of 0.
package optim
