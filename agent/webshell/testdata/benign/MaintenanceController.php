<?php

namespace App\Http\Controllers\Admin;

use Illuminate\Support\Facades\Artisan;
use Illuminate\Support\Facades\Process;

class MaintenanceController extends Controller
{
    public function clearCache()
    {
        Artisan::call('cache:clear');
        Artisan::call('view:clear');

        return back()->with('status', trim(Artisan::output()));
    }

    public function deploy()
    {
        $result = Process::path(base_path())->run(['git', 'pull', '--ff-only']);

        return response()->json(['ok' => $result->successful(), 'output' => $result->output()]);
    }
}
