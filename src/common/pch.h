// Precompiled header for every translation unit of extrap_core (see CMakeLists.txt).
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>
#include <map>
#include <memory>
#include <functional>
