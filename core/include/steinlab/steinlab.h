/* steinlab/steinlab.h — everything a plugin needs: #include <steinlab/steinlab.h>. */
#ifndef STEINLAB_STEINLAB_H
#define STEINLAB_STEINLAB_H

#include "steinlab/camera.h"
#include "steinlab/diffusion.h"
#include "steinlab/geometry.h"
#include "steinlab/image.h"
#include "steinlab/metrics.h"
#include "steinlab/optim.h"
#include "steinlab/params.h"
#include "steinlab/plugin.h"
#include "steinlab/rng.h"
#include "steinlab/schedule.h"
#include "steinlab/spec_tree.h"
#include "steinlab/state_io.h"
#include "steinlab/status.h"
#include "steinlab/suggest.h"
#include "steinlab/version.h"

#endif
